//! What `--json` prints: every time as RFC 3339 (`…_at` in seconds or milliseconds, and an
//! event's `time_ms` as `time`), whatever the record stores.

use serde::Serialize;
use serde_json::Value;

/// Prints `value` as JSON, on one line or pretty.
pub fn print<T: Serialize>(value: &T, pretty: bool) {
    let mut v = serde_json::to_value(value).unwrap_or_default();
    times(&mut v);
    let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
    println!("{}", text.unwrap_or_default());
}

/// Seconds, or milliseconds past 10^11 (no seconds count reaches that before the year 5000).
fn rfc3339(n: u64) -> String {
    let t = if n >= 100_000_000_000 {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(n)
    } else {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(n)
    };
    if n >= 100_000_000_000 {
        humantime::format_rfc3339_millis(t).to_string()
    } else {
        humantime::format_rfc3339_seconds(t).to_string()
    }
}

fn times(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(ms) = map.get("time_ms").and_then(Value::as_u64) {
                map.remove("time_ms");
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                map.insert("time".into(), Value::String(humantime::format_rfc3339_millis(t).to_string()));
            }
            for (k, x) in map.iter_mut() {
                match x.as_u64() {
                    Some(n) if k.ends_with("_at") => *x = Value::String(rfc3339(n)),
                    _ => times(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(times),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_becomes_rfc_3339() {
        let mut v = serde_json::json!({
            "created_at": 1_796_666_004u64, "time_ms": 1_796_666_004_123u64, "next_attempt_at": 1_796_666_004_500u64,
            "expires_in": 600, "items": [{"last_used_at": 1_796_666_004u64, "name": "x"}], "rotated_at": null
        });
        times(&mut v);
        assert_eq!(v["created_at"], "2026-12-07T17:53:24Z");
        assert_eq!(v["time"], "2026-12-07T17:53:24.123Z");
        assert!(v.get("time_ms").is_none());
        assert_eq!(v["next_attempt_at"], "2026-12-07T17:53:24.500Z");
        assert_eq!(v["expires_in"], 600);
        assert_eq!(v["items"][0]["last_used_at"], "2026-12-07T17:53:24Z");
        assert!(v["rotated_at"].is_null());
    }
}
