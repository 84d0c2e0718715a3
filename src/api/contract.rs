//! The served OpenAPI document is the contract. It is finished here with the rules poem-openapi
//! cannot express, and every JSON request body is checked against that same document before it
//! is parsed, so the server accepts exactly what it documents.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{LazyLock, OnceLock},
};

use poem::http::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json, value::RawValue};

use crate::error::{Error, FieldError};

/// The media type of problem details (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Request schemas that follow OAuth's rule to ignore unrecognised parameters (RFC 6749 §3.2,
/// RFC 7662 §2.1); every other request body refuses unknown fields.
const OPEN_REQUESTS: &[&str] = &["ClientTokenRequest", "IntrospectBody"];

/// An account needs an email or a phone number (a username alone cannot receive anything).
const EMAIL_OR_PHONE: &str = "an email or a phone number is required";

/// Rules poem-openapi cannot express, as (schema, JSON pointer inside it, value).
fn extra_rules() -> Vec<(&'static str, &'static str, Value)> {
    let email_or_phone = json!([{"required": ["email"]}, {"required": ["phone"]}]);
    let role = json!({"type": "string", "pattern": "^[a-z0-9_-]{2,32}$"});
    let permission = json!({"type": "string", "pattern": "^(\\*|[a-z0-9_.-]{1,64}:(\\*|[a-z0-9_.-]{1,64}))$"});
    vec![
        ("RegisterRequest", "/anyOf", email_or_phone.clone()),
        ("CreateUserRequest", "/anyOf", email_or_phone),
        ("CreateUserRequest", "/properties/roles/items", role.clone()),
        ("CreateUserRequest", "/properties/roles/minItems", json!(1)),
        ("PatchUserRequest", "/properties/roles/items", role.clone()),
        ("PatchUserRequest", "/properties/roles/minItems", json!(1)),
        ("CreateClientRequest", "/properties/roles/items", role),
        ("CreateRoleRequest", "/properties/permissions/items", permission.clone()),
        ("ChangeRoleRequest", "/properties/grant/items", permission.clone()),
        ("ChangeRoleRequest", "/properties/revoke/items", permission),
        ("AddWebhookRequest", "/properties/events/minItems", json!(1)),
        (
            "ClientTokenRequest",
            "/properties/grant_type/enum",
            json!(["authorization_code", "refresh_token", "client_credentials"]),
        ),
        (
            "ClientTokenRequest",
            "/oneOf",
            json!([
                {"properties": {"grant_type": {"enum": ["authorization_code"]}}, "required": ["code"]},
                {"properties": {"grant_type": {"enum": ["refresh_token"]}}, "required": ["refresh_token"]},
                {"properties": {"grant_type": {"enum": ["client_credentials"]}}},
            ]),
        ),
        ("RegisterRequest", "/properties/locale/enum", json!(crate::messages::LOCALES)),
        ("UpdateMeRequest", "/properties/locale/enum", json!(crate::messages::LOCALES)),
        (
            "VerifyRequest",
            "/oneOf",
            json!([
                {"required": ["token"], "not": {"anyOf": [{"required": ["email"]}, {"required": ["phone"]}, {"required": ["code"]}]}},
                {"required": ["email", "code"], "not": {"anyOf": [{"required": ["token"]}, {"required": ["phone"]}]}},
                {"required": ["phone", "code"], "not": {"anyOf": [{"required": ["token"]}, {"required": ["email"]}]}},
            ]),
        ),
        ("ResendRequest", "/oneOf", json!([{"required": ["email"]}, {"required": ["phone"]}])),
        (
            "ResetRequest",
            "/oneOf",
            json!([
                {"required": ["token"], "not": {"anyOf": [{"required": ["login"]}, {"required": ["code"]}]}},
                {"required": ["login", "code"], "not": {"required": ["token"]}},
            ]),
        ),
        ("MfaLoginRequest", "/oneOf", json!([{"required": ["code"]}, {"required": ["recovery_code"]}])),
        ("DisableRequest", "/oneOf", json!([{"required": ["code"]}, {"required": ["recovery_code"]}])),
    ]
}

/// The finished document as checked in, served as it is. Building it from the code at every
/// start cost megabytes of heap and code pages that an idle server kept; `authd openapi` builds
/// it from the code, and a test keeps the two equal.
const DOCUMENT: &str = include_str!("../../openapi/authd.json");

/// What the server reads from the document: borrowed from it, parsed once.
struct Contract {
    schemas: BTreeMap<&'static str, &'static RawValue>,
    requests: HashMap<&'static str, RequestSchema>,
    routes: Vec<(Vec<&'static str>, Vec<Method>)>,
}

/// A schema some request body refers to. Its validator is compiled at its first use: an idle
/// server holds none, a busy one only those its clients send.
struct RequestSchema {
    properties: Vec<&'static str>,
    validator: OnceLock<Option<jsonschema::Validator>>,
}

/// Operations by path and method.
type Paths<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Operation<'a>>>;

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    paths: Paths<'a>,
    #[serde(borrow)]
    components: Components<'a>,
}

#[derive(Deserialize)]
struct Components<'a> {
    #[serde(borrow)]
    schemas: BTreeMap<&'a str, &'a RawValue>,
}

#[derive(Deserialize)]
struct Operation<'a> {
    #[serde(default, borrow, rename = "requestBody")]
    request_body: Option<RequestBody<'a>>,
}

#[derive(Deserialize)]
struct RequestBody<'a> {
    #[serde(borrow)]
    content: BTreeMap<&'a str, Media<'a>>,
}

#[derive(Deserialize)]
struct Media<'a> {
    #[serde(default, borrow)]
    schema: Option<SchemaRef<'a>>,
}

#[derive(Deserialize)]
struct SchemaRef<'a> {
    #[serde(default, borrow, rename = "$ref")]
    reference: Option<&'a str>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    #[serde(default, borrow)]
    properties: BTreeMap<&'a str, serde::de::IgnoredAny>,
}

/// Read at the first request that needs it (a body to check, an error to explain, metrics): its
/// half a megabyte of text is then paged in, and not by a server that only starts.
static CONTRACT: LazyLock<Contract> = LazyLock::new(load);

/// The finished document, as served at `/openapi.json` and checked in as `openapi/authd.json`.
pub fn spec() -> &'static str {
    DOCUMENT
}

fn load() -> Contract {
    let document: Document<'static> = match serde_json::from_str(DOCUMENT) {
        Ok(d) => d,
        Err(e) => {
            // A test reads the same text, so this is our bug; serve without validators.
            tracing::error!(error = %e, "openapi/authd.json does not parse");
            return Contract { schemas: BTreeMap::new(), requests: HashMap::new(), routes: Vec::new() };
        }
    };
    let schemas = document.components.schemas;
    let requests = request_schemas(&document.paths)
        .into_iter()
        .map(|name| {
            let properties = schemas
                .get(name)
                .and_then(|raw| serde_json::from_str::<Properties<'static>>(raw.get()).ok())
                .map(|p| p.properties.into_keys().collect())
                .unwrap_or_default();
            (name, RequestSchema { properties, validator: OnceLock::new() })
        })
        .collect();
    let routes = document
        .paths
        .iter()
        .map(|(path, ops)| {
            let segments = path.split('/').collect();
            let methods = ops.keys().filter_map(|m| m.to_uppercase().parse().ok()).collect();
            (segments, methods)
        })
        .collect();
    Contract { schemas, requests, routes }
}

impl Contract {
    fn validator(&self, name: &str) -> Option<&jsonschema::Validator> {
        let request = self.requests.get(name)?;
        request.validator.get_or_init(|| self.compile(name)).as_ref()
    }

    fn compile(&self, name: &str) -> Option<jsonschema::Validator> {
        let root = json!({"$ref": format!("{SCHEMAS}{name}"), "components": {"schemas": self.referenced(name)}});
        let validator = jsonschema::draft4::options()
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(&root);
        validator.map_err(|e| tracing::error!(schema = %name, error = %e, "request schema does not compile")).ok()
    }

    /// The schema `name` and every schema it refers to, directly or not: a validator carries
    /// only these, not the whole document.
    fn referenced(&self, name: &str) -> Map<String, Value> {
        fn refs(value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(o) => {
                    if let Some(r) = o.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(SCHEMAS)) {
                        found.push(r.to_owned());
                    }
                    o.values().for_each(|v| refs(v, found));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let mut kept = Map::new();
        let mut pending = vec![name.to_owned()];
        while let Some(next) = pending.pop() {
            if kept.contains_key(&next) {
                continue;
            }
            if let Some(schema) = self.schemas.get(next.as_str()).and_then(|raw| serde_json::from_str(raw.get()).ok()) {
                refs(&schema, &mut pending);
                kept.insert(next, schema);
            }
        }
        kept
    }
}

/// The document made from the code: poem-openapi's, finished. `authd openapi` prints it.
pub fn document_from_code() -> String {
    let mut document: Value = serde_json::from_str(&super::api_service().spec()).unwrap_or(Value::Null);
    finish(&mut document);
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

const SCHEMAS: &str = "#/components/schemas/";

/// Names of the component schemas that request bodies refer to.
fn request_schemas<'a>(paths: &Paths<'a>) -> Vec<&'a str> {
    let mut names = Vec::new();
    for op in paths.values().flat_map(BTreeMap::values) {
        for (media, body) in op.request_body.iter().flat_map(|b| &b.content) {
            if !media.starts_with("application/json") && *media != "application/x-www-form-urlencoded" {
                continue;
            }
            if let Some(name) = body.schema.as_ref().and_then(|s| s.reference).and_then(|r| r.rsplit('/').next())
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names
}

/// Answers the edge can give on any path, whatever the operation (body limit, timeout, rate
/// limit, our own failure).
fn edge_responses() -> Vec<(&'static str, &'static str)> {
    vec![
        ("408", "The request took longer than `server.request_timeout` (`request_timeout`)."),
        ("413", "The body exceeds `server.max_body_bytes` (`payload_too_large`)."),
        ("415", "The body is not in a media type this operation reads (`unsupported_media_type`)."),
        ("429", "Slow down (`rate_limited`); `Retry-After` says for how long."),
        ("500", "Our fault (`internal_error`); the body holds no internals."),
    ]
}

/// What poem-openapi cannot say: unknown fields refused, rules across fields, and the problem
/// responses the edge adds to every operation.
fn finish(document: &mut Value) {
    let problem = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    for item in document["paths"].as_object_mut().into_iter().flat_map(|p| p.values_mut()) {
        for op in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            let Some(responses) = op["responses"].as_object_mut() else { continue };
            for (status, description) in edge_responses() {
                responses
                    .entry(status)
                    .or_insert_with(|| json!({"description": description, "content": problem.clone()}));
            }
            // An OAuth endpoint's own 400 is RFC 6749 JSON; an unreadable request (a path or
            // parameter the router refuses) is still a problem.
            if let Some(content) = responses.get_mut("400").and_then(|r| r["content"].as_object_mut()) {
                content.entry(PROBLEM_JSON).or_insert_with(|| problem[PROBLEM_JSON].clone());
            }
        }
    }
    let requests: Vec<String> = Paths::deserialize(&document["paths"])
        .map(|paths| request_schemas(&paths).into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let schemas = &mut document["components"]["schemas"];
    for name in &requests {
        if !OPEN_REQUESTS.contains(&name.as_str()) {
            schemas[name]["additionalProperties"] = Value::Bool(false);
        }
    }
    for (name, pointer, rule) in extra_rules() {
        if let Some(slot) = schemas.get_mut(name).and_then(|s| pointer_mut(s, pointer)) {
            *slot = rule;
        } else {
            tracing::error!(schema = name, pointer, "a contract rule names no schema field");
        }
    }
}

/// Like `Value::pointer_mut`, but creates the last member.
fn pointer_mut<'a>(value: &'a mut Value, pointer: &str) -> Option<&'a mut Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let object = if parent.is_empty() { Some(value) } else { value.pointer_mut(parent) }?.as_object_mut()?;
    Some(object.entry(last.to_owned()).or_insert(Value::Null))
}

/// Whether the documented schema `name` has the property `field`.
pub fn has_property(name: &str, field: &str) -> bool {
    CONTRACT.requests.get(name).is_some_and(|r| r.properties.contains(&field))
}

/// Checks a JSON request body against the documented schema `name`. Schema violations are
/// `validation_failed` with one entry per field; secrets are never echoed.
pub fn check_body(name: &str, body: &Value) -> Result<(), Error> {
    let Some(validator) = CONTRACT.validator(name) else {
        // A test compiles every request schema; a miss is our bug, not the client's.
        return Err(Error::Internal(format!("no request schema named {name}")));
    };
    let fields: Vec<FieldError> = validator.iter_errors(body).take(20).map(|e| field_error(&e)).collect();
    // RFC 6749 §5.2 names this refusal itself.
    if name == "ClientTokenRequest" && fields.iter().any(|f| f.field == "grant_type" && f.code == "invalid_value") {
        return Err(Error::UnsupportedGrantType);
    }
    if fields.is_empty() { Ok(()) } else { Err(Error::Malformed(fields)) }
}

fn field_error(e: &jsonschema::ValidationError<'_>) -> FieldError {
    use jsonschema::error::ValidationErrorKind as K;
    let at = e.instance_path().as_str().trim_start_matches('/').replace('/', ".");
    let name = if at.is_empty() { "body".to_owned() } else { at.clone() };
    let (field, code, message) = match e.kind() {
        K::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            let field = if at.is_empty() { p.to_owned() } else { format!("{at}.{p}") };
            (field.clone(), "required", format!("{field} is required"))
        }
        K::AdditionalProperties { unexpected } => {
            let u = unexpected.first().cloned().unwrap_or_default();
            let field = if at.is_empty() { u } else { format!("{at}.{u}") };
            (field.clone(), "unknown_field", format!("{field} is not a field of this request"))
        }
        K::AnyOf { .. } => ("email".to_owned(), "required", EMAIL_OR_PHONE.to_owned()),
        K::Type { kind } => (name.clone(), "wrong_type", format!("{name} must be of type {}", type_name(kind))),
        K::MaxLength { limit } => (name.clone(), "too_long", format!("{name} must be at most {limit} characters")),
        K::MinLength { limit } => (name.clone(), "too_short", format!("{name} must be at least {limit} characters")),
        K::MaxItems { limit } => (name.clone(), "too_many", format!("{name} must have at most {limit} items")),
        K::Enum { options } => (name.clone(), "invalid_value", format!("{name} must be one of {options}")),
        K::Pattern { .. } | K::Format { .. } => (name.clone(), "invalid_format", format!("{name} is not well formed")),
        K::Minimum { limit } => (name.clone(), "too_small", format!("{name} must be at least {limit}")),
        K::Maximum { limit } => (name.clone(), "too_large", format!("{name} must be at most {limit}")),
        _ => (name.clone(), "invalid", format!("{name} is invalid")),
    };
    FieldError::new(&field, code, message)
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or "),
    }
}

/// The documented route a concrete request path takes.
fn route(path: &str) -> Option<&'static (Vec<&'static str>, Vec<Method>)> {
    let segments: Vec<&str> = path.split('/').collect();
    CONTRACT.routes.iter().find(|(template, _)| {
        template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
    })
}

/// The routes served beside the document's (the hosted pages, the docs, the document itself).
const UNDOCUMENTED_ROUTES: &[&str] =
    &["/ui/verify", "/ui/reset", "/ui/forgot", "/docs", "/docs/", "/openapi.json", "/metrics"];

/// The documented template of a concrete request path, for metrics, with parameters written
/// `:id` (some scrapers mis-read braces in label values); `other` for every path no route has,
/// so that a client cannot add label values (each one kept for good) by making paths up.
pub fn route_template(path: &str) -> String {
    match route(path) {
        Some((template, _)) => template
            .iter()
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{name}"),
                None => (*s).to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/"),
        None => UNDOCUMENTED_ROUTES.iter().find(|r| **r == path).map_or("other", |r| *r).to_owned(),
    }
}

/// The documented name of the `index`th path parameter of a request path.
pub fn path_parameter(path: &str, index: usize) -> Option<String> {
    let (template, _) = route(path)?;
    let name = template.iter().filter(|s| s.starts_with('{')).nth(index)?;
    Some(name.trim_matches(|c| c == '{' || c == '}').to_owned())
}

/// The methods the document lists for a concrete request path, for a 405's `Allow` header.
pub fn allowed_methods(path: &str) -> Option<String> {
    let (_, methods) = route(path)?;
    let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    if methods.contains(&Method::GET) {
        names.push("HEAD");
    }
    Some(names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_valid_json_with_strict_request_bodies() {
        let doc: Value = serde_json::from_str(spec()).unwrap();
        assert_eq!(doc["components"]["schemas"]["LoginRequest"]["additionalProperties"], false);
        assert!(doc["components"]["schemas"]["IntrospectBody"].get("additionalProperties").is_none());
        assert!(CONTRACT.requests.len() > 10);
        for name in CONTRACT.requests.keys() {
            assert!(CONTRACT.validator(name).is_some(), "{name} does not compile");
        }
    }

    #[test]
    fn every_extra_rule_lands_on_a_schema_field() {
        let doc: Value = serde_json::from_str(spec()).unwrap();
        for (name, pointer, rule) in extra_rules() {
            assert_eq!(doc["components"]["schemas"][name].pointer(pointer), Some(&rule), "{name}{pointer}");
        }
    }

    #[test]
    fn every_operation_documents_the_edge_answers() {
        let doc: Value = serde_json::from_str(spec()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["408", "413", "429", "500"] {
                    assert!(op["responses"].get(status).is_some(), "{method} {path} {status}");
                }
            }
        }
    }

    #[test]
    fn booleans_are_not_strings_and_fields_are_named() {
        let Err(Error::Malformed(fields)) = check_body("CreateRoleRequest", &json!({"name": false, "permissions": []}))
        else {
            panic!("a boolean name was accepted");
        };
        assert_eq!((fields[0].field.as_str(), fields[0].code.as_str()), ("name", "wrong_type"));
        let Err(Error::Malformed(fields)) = check_body("LoginRequest", &json!({"login": "a", "password": "b", "x": 1}))
        else {
            panic!("an unknown field was accepted");
        };
        assert_eq!((fields[0].field.as_str(), fields[0].code.as_str()), ("x", "unknown_field"));
    }

    #[test]
    fn allow_lists_the_documented_methods() {
        assert_eq!(allowed_methods("/v1/auth/login").as_deref(), Some("POST"));
        assert_eq!(allowed_methods("/v1/me").as_deref(), Some("GET, PATCH, HEAD"));
        assert!(allowed_methods("/v1/admin/users/0190").unwrap().contains("PATCH"));
        assert_eq!(allowed_methods("/v1/nothing"), None);
        assert_eq!(path_parameter("/v1/admin/users/x/sessions/y", 1).as_deref(), Some("sid"));
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::*;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
                "[ -~]{0,40}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 32, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{1,16}", inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            /// Every request body type: any JSON is accepted or refused with field errors,
            /// never a panic and never an internal error.
            #[test]
            fn any_json_is_checked_cleanly(body in json()) {
                for name in CONTRACT.requests.keys() {
                    match check_body(name, &body) {
                        Ok(()) => {}
                        Err(Error::Malformed(fields)) => prop_assert!(!fields.is_empty() && fields.len() <= 20),
                        Err(other) => prop_assert!(false, "{name}: {other:?}"),
                    }
                }
            }
        }
    }
}
