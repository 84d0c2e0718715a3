//! JSON and form request bodies, checked against the served document before they are parsed.

use poem::{FromRequest, IntoResponse, Request, RequestBody};
use poem_openapi::{
    impl_apirequest_for_payload,
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::{ParseFromJSON, Type},
};
use serde_json::Value;

use super::{contract, problem::ApiError};
use crate::error::{Error, FieldError};

/// A JSON request body. A value of the wrong type is refused rather than coerced (`false` is not
/// the string `"false"`), unknown fields are refused, and each problem names its field.
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        let value = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&data).map_err(|e| {
                refuse(Error::Malformed(vec![FieldError::new(
                    "body",
                    "invalid_json",
                    format!("the body is not valid JSON: {}", json_problem(&e)),
                )]))
            })?
        };
        parse(value).map(Self)
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON);

/// A form-encoded request body (OAuth endpoints), checked against the same schema as its JSON
/// twin: every value is a string, and a parameter given twice is refused (RFC 6749 §3.2).
pub struct FormBody<T>(pub T);

impl<T: Type> Payload for FormBody<T> {
    const CONTENT_TYPE: &'static str = "application/x-www-form-urlencoded";

    fn check_content_type(content_type: &str) -> bool {
        content_type.parse::<mime::Mime>().is_ok_and(|m| m.essence_str() == "application/x-www-form-urlencoded")
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for FormBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        let mut fields = serde_json::Map::new();
        for (name, value) in url::form_urlencoded::parse(&data) {
            let known = match T::schema_ref() {
                poem_openapi::registry::MetaSchemaRef::Reference(schema) => contract::has_property(&schema, &name),
                poem_openapi::registry::MetaSchemaRef::Inline(_) => false,
            };
            if fields.insert(name.to_string(), Value::String(value.into_owned())).is_some() && known {
                let problem = FieldError::new(&name, "repeated", format!("{name} is given more than once"));
                let oauth = matches!(T::schema_ref(), poem_openapi::registry::MetaSchemaRef::Reference(n) if OAUTH_BODIES.contains(&n.as_str()));
                let e = Error::Malformed(vec![problem]);
                return Err(if oauth { refuse_oauth(e) } else { refuse(e) });
            }
        }
        parse(Value::Object(fields)).map(Self)
    }
}

impl_apirequest_for_payload!(FormBody<T>, T: ParseFromJSON);

/// Bodies of the OAuth token endpoint, refused with RFC 6749 §5.2 errors: client libraries read
/// those, not problem details.
const OAUTH_BODIES: &[&str] = &["ClientTokenRequest"];

/// Checks a body against its documented schema, then parses it.
fn parse<T: ParseFromJSON>(value: Value) -> poem::Result<T> {
    let schema = match T::schema_ref() {
        poem_openapi::registry::MetaSchemaRef::Reference(name) => Some(name),
        poem_openapi::registry::MetaSchemaRef::Inline(_) => None,
    };
    let oauth = schema.as_deref().is_some_and(|n| OAUTH_BODIES.contains(&n));
    let refuse = |e: Error| if oauth { refuse_oauth(e) } else { refuse(e) };
    // The component the document names (an optional body names its inner object's).
    if let (Some(name), true) = (&schema, T::IS_REQUIRED || !value.is_null()) {
        contract::check_body(name, &value).map_err(refuse)?;
    }
    T::parse_from_json(Some(value)).map_err(|_| {
        refuse(Error::Malformed(vec![FieldError::new("body", "invalid", "the body does not match its schema")]))
    })
}

fn refuse(e: Error) -> poem::Error {
    poem::Error::from_response(ApiError::from(e).into_response())
}

fn refuse_oauth(e: Error) -> poem::Error {
    poem::Error::from_response(super::oauth_error::OAuthError::from(e).into_response())
}

/// serde_json's complaint without the input it quotes.
fn json_problem(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "it ends too early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "it could not be read",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}
