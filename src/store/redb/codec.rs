//! One codec for every stored record: a format byte, then JSON. JSON with `#[serde(default)]`
//! fields lets records grow without a migration; the leading byte leaves room for another format.

use serde::{Serialize, de::DeserializeOwned};

use crate::store::StoreError;

const FORMAT_JSON: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_JSON];
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Codec(e.to_string()))?;
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_JSON, rest)) => serde_json::from_slice(rest).map_err(|e| StoreError::Codec(e.to_string())),
        Some((other, _)) => Err(StoreError::Codec(format!("unknown record format {other}"))),
        None => Err(StoreError::Codec("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{User, UserStatus};

    #[test]
    fn records_round_trip_and_old_records_still_decode() {
        let id = uuid::Uuid::now_v7();
        let old = format!("\u{1}{{\"id\":\"{id}\",\"created_at\":5}}");
        let u: User = decode(old.as_bytes()).unwrap();
        assert_eq!(u.id, id);
        assert_eq!(u.status, UserStatus::Active);
        assert!(u.roles.is_empty());
        let again: User = decode(&encode(&u).unwrap()).unwrap();
        assert_eq!(again.id, id);
        assert!(decode::<User>(b"").is_err());
        assert!(decode::<User>(b"\x09{}").is_err());
    }
}
