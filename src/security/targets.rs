//! Outgoing requests to addresses the operator named (webhooks) must not reach the host's own
//! network: loopback, private, link-local (cloud metadata at 169.254.169.254), shared, multicast
//! and reserved ranges are refused unless allowed, and names are checked after resolution, on the
//! very addresses connected to, so that DNS rebinding gains nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0064 && s[1] == 0xff9b)
        || s[..6] == [0, 0, 0, 0, 0, 0])
}

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("is not an http(s) URL with a host ({0})")]
    Invalid(String),
    #[error("points at a loopback, private, link-local or reserved address")]
    Private,
}

/// Checks a URL's literal host (names are checked when resolved).
pub fn check_url(url: &str, allow_private: bool) -> Result<(), TargetError> {
    let u = reqwest::Url::parse(url).map_err(|e| TargetError::Invalid(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(TargetError::Invalid(format!("scheme `{}`", u.scheme())));
    }
    // The URL parser has already turned odd spellings (0x7f000001, 2130706433, 127.1) into
    // plain addresses.
    let ip = match u.host() {
        None => return Err(TargetError::Invalid("no host".into())),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
    };
    if allow_private || is_public(ip) { Ok(()) } else { Err(TargetError::Private) }
}

/// A resolver that refuses a name if any of its addresses is not public.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
                return Err("the name resolves to a non-public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_and_their_odd_spellings_are_refused() {
        for bad in [
            "http://127.0.0.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "ftp://example.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} should be refused");
        }
        for good in ["https://hooks.example.com/x", "http://93.184.215.14/", "http://[2606:4700::1]/"] {
            assert!(check_url(good, false).is_ok(), "{good} should pass");
        }
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
    }
}
