use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;
use crate::config::SigningAlgorithm;

/// The scopes authd grants, each naming the claims it releases.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "phone", "roles"];

/// How a client proves itself at the token endpoint (RFC 7591 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client (a browser or native app): no secret, PKCE instead.
    None,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 3] = [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost, AuthMethod::None];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

fn all_scopes() -> Vec<String> {
    SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

/// An application of authd: a relying party that signs users in (`redirect_uris`), a backend
/// that gets tokens of its own with `client_credentials`, or both.
#[derive(Clone, Serialize, Deserialize)]
pub struct Client {
    pub id: Uuid,
    pub name: String,
    /// What its own `client_credentials` tokens carry.
    #[serde(default)]
    pub roles: Vec<String>,
    /// SHA-256 of the secret (256 random bits, so a fast hash is enough); empty for a public
    /// client.
    pub secret_hash: Vec<u8>,
    pub created_at: UnixTime,
    #[serde(default)]
    pub secret_rotated_at: UnixTime,
    /// As `User::authz_gen`: bumped by secret rotation and by edits of its roles.
    #[serde(default)]
    pub authz_gen: u64,
    /// Where authorization responses may go, compared exactly. None: no user sign-in.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The scopes it may ask for.
    #[serde(default = "all_scopes")]
    pub scopes: Vec<String>,
    /// Users are not asked to consent.
    #[serde(default)]
    pub trusted: bool,
    /// Authorization requests must be pushed first (RFC 9126).
    #[serde(default)]
    pub require_par: bool,
    #[serde(default)]
    pub token_endpoint_auth_method: AuthMethod,
    /// RS256 when unset.
    #[serde(default)]
    pub id_token_signed_response_alg: Option<SigningAlgorithm>,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == AuthMethod::None
    }

    pub fn id_token_alg(&self) -> SigningAlgorithm {
        self.id_token_signed_response_alg.unwrap_or(SigningAlgorithm::RS256)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}
