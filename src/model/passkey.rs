use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnixTime;

/// A WebAuthn credential (passkey) a user signs in with: discoverable, with user verification.
/// `credential_id` is unique across all users.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Passkey {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The authenticator's id of the credential.
    pub credential_id: Vec<u8>,
    /// The user's name for it.
    pub name: String,
    /// The public key, sign count and flags as the WebAuthn library keeps them (JSON).
    pub credential: String,
    /// The last sign count seen; a count that goes backwards means a cloned authenticator.
    #[serde(default)]
    pub sign_count: u32,
    /// The credential may be synced to other devices (backup eligible) …
    #[serde(default)]
    pub backup_eligible: bool,
    /// … and is (backed up).
    #[serde(default)]
    pub backed_up: bool,
    /// How the browser reached the authenticator (`internal`, `usb`, `hybrid`, …).
    #[serde(default)]
    pub transports: Vec<String>,
    pub created_at: UnixTime,
    /// 0 until first used to sign in.
    #[serde(default)]
    pub last_used_at: UnixTime,
}
