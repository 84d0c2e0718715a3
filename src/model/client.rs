use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;

/// A non-human principal (a backend) that gets tokens with `client_credentials`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServiceClient {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// SHA-256 of the secret (256 random bits, so a fast hash is enough).
    pub secret_hash: Vec<u8>,
    pub created_at: UnixTime,
    #[serde(default)]
    pub secret_rotated_at: UnixTime,
    /// As `User::authz_gen`: bumped by secret rotation and by edits of its roles.
    #[serde(default)]
    pub authz_gen: u64,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}
