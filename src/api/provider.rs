//! The OpenID Provider's protocol endpoints for clients: pushed authorization requests
//! (RFC 9126), UserInfo (OIDC Core §5.3), revocation (RFC 7009) and introspection (RFC 7662).
//! They speak OAuth: form bodies, client authentication, RFC 6749 §5.2 errors. The browser
//! endpoints (authorization, end session) live with the hosted pages.

use std::sync::Arc;

use poem::{
    Request, Response, Route, handler,
    http::{Method, StatusCode, header},
    web::Data,
};
use serde_json::json;

use super::{oauth_error::oauth_response, pages, token::presented};
use crate::{
    error::Error,
    service::{AuthService, Params, params_of},
};

pub fn routes() -> Route {
    Route::new()
        .at("/authorize", poem::get(pages::authorize).post(pages::authorize))
        .at("/logout", poem::get(pages::end_session).post(pages::end_session))
        .at("/par", poem::post(par))
        .at("/userinfo", poem::get(userinfo).post(userinfo))
        .at("/revoke", poem::post(revoke))
        .at("/introspect", poem::post(introspect))
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.to_string())
}

/// A form body's parameters; a repeated one is `invalid_request`.
async fn form(req: &Request, body: poem::Body) -> Result<Params, Error> {
    let form = req
        .content_type()
        .and_then(|c| c.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/x-www-form-urlencoded");
    if !form {
        return Err(Error::InvalidRequest("the body must be application/x-www-form-urlencoded".into()));
    }
    let bytes = body.into_bytes().await.map_err(|_| Error::InvalidRequest("the body could not be read".into()))?;
    params_of(url::form_urlencoded::parse(&bytes).into_owned())
        .map_err(|name| Error::InvalidRequest(format!("{name} is given more than once")))
}

/// The client's credentials from Basic or the form; the form's copies are then dropped.
fn client_of(req: &Request, p: &mut Params) -> Result<crate::service::Presented, Error> {
    let id = p.remove("client_id");
    let secret = p.remove("client_secret");
    let presented = presented(req, id.clone(), secret)?;
    // A pushed request keeps naming its client.
    if let Some(id) = id {
        p.insert("client_id".into(), id);
    }
    Ok(presented)
}

/// `POST /oauth2/par`.
#[handler]
async fn par(svc: Data<&Arc<AuthService>>, req: &Request, body: poem::Body) -> Response {
    let run = async {
        let mut p = form(req, body).await?;
        let who = client_of(req, &mut p)?;
        Ok::<_, Error>(match svc.provider.push(&who, p).await? {
            Ok((request_uri, expires_in)) => {
                json_response(StatusCode::CREATED, json!({"request_uri": request_uri, "expires_in": expires_in}))
            }
            Err(r) => {
                json_response(StatusCode::BAD_REQUEST, json!({"error": r.error, "error_description": r.description}))
            }
        })
    };
    run.await.unwrap_or_else(oauth_response)
}

/// `GET|POST /oauth2/userinfo` with a Bearer access token (RFC 6750 §2.1, or §2.2 in a form).
#[handler]
async fn userinfo(svc: Data<&Arc<AuthService>>, req: &Request, body: poem::Body) -> Response {
    let run = async {
        let header_token = req
            .header(header::AUTHORIZATION)
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned());
        let token = match header_token {
            Some(t) => t,
            None if req.method() == Method::POST => form(req, body)
                .await
                .ok()
                .and_then(|mut p| p.remove("access_token"))
                .ok_or(Error::InvalidToken(crate::error::TokenError::Malformed))?,
            None => return Err(Error::InvalidToken(crate::error::TokenError::Malformed)),
        };
        let claims = svc.provider.userinfo(&token).await?;
        Ok::<_, Error>(json_response(StatusCode::OK, serde_json::Value::Object(claims)))
    };
    run.await.unwrap_or_else(oauth_response)
}

/// `POST /oauth2/revoke`: 200 whatever the token was (RFC 7009 §2.2).
#[handler]
async fn revoke(svc: Data<&Arc<AuthService>>, req: &Request, body: poem::Body) -> Response {
    let run = async {
        let mut p = form(req, body).await?;
        let who = client_of(req, &mut p)?;
        let token = p.remove("token").ok_or_else(|| Error::InvalidRequest("token is missing".into()))?;
        svc.provider.revoke(&who, &token).await?;
        Ok::<_, Error>(json_response(StatusCode::OK, json!({})))
    };
    run.await.unwrap_or_else(oauth_response)
}

/// `POST /oauth2/introspect`: a client asks about a token issued to it.
#[handler]
async fn introspect(svc: Data<&Arc<AuthService>>, req: &Request, body: poem::Body) -> Response {
    let run = async {
        let mut p = form(req, body).await?;
        let who = client_of(req, &mut p)?;
        let token = p.remove("token").ok_or_else(|| Error::InvalidRequest("token is missing".into()))?;
        let i = svc.provider.introspect(&who, &token).await?;
        let mut out = serde_json::Map::new();
        out.insert("active".into(), json!(i.active));
        if i.active {
            let mut put = |k: &str, v: serde_json::Value| {
                if !v.is_null() {
                    out.insert(k.into(), v);
                }
            };
            put("token_type", json!(i.token_type));
            put("sub", json!(i.sub));
            put("sid", json!(i.sid));
            put("jti", json!(i.jti));
            put("exp", json!(i.exp));
            put("iat", json!(i.iat));
            put("iss", json!(i.iss));
            put("aud", json!(i.aud));
            put("client_id", json!(i.client_id));
            put("scope", json!(i.scope));
        }
        Ok::<_, Error>(json_response(StatusCode::OK, serde_json::Value::Object(out)))
    };
    run.await.unwrap_or_else(oauth_response)
}
