//! The bearer-token security scheme: every protected operation authenticates through here.

use std::sync::Arc;

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use super::problem::ApiError;
use crate::{
    error::Error,
    service::{AuthContext, AuthService},
};

/// Access token (JWT) from `POST /v1/auth/login` or `/v1/auth/refresh`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub AuthContext);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AuthContext> {
    let svc = req
        .data::<Arc<AuthService>>()
        .ok_or_else(|| poem::Error::from(ApiError::from(Error::Internal("service missing".into()))))?;
    svc.authenticate(&bearer.token).map_err(|e| ApiError::from(Error::from(e)).into())
}
