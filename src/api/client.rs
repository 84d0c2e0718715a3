//! Who is on the other end of a request.
//!
//! The client IP is the socket peer, unless that peer is one of `server.trusted_proxies`: only
//! then is the one header named by `server.client_ip_header` read (hops right to left, the first
//! that is not a trusted proxy is the client), and no other: a client could add any of the
//! others itself. `poem::web::RealIp` is not used: it believes any client.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::{
    Request,
    http::{HeaderMap, header},
};

use crate::{config::ClientIpHeader, service::ClientInfo};

/// The resolved client address, stored on the request by the edge middleware.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

pub fn resolve_client_ip(req: &Request, trusted: &[IpNet], header: ClientIpHeader) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr()?.ip().to_canonical();
    Some(resolve(peer, req.headers(), trusted, header))
}

fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], header: ClientIpHeader) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let values = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let hops: Vec<&str> = match header {
        ClientIpHeader::XForwardedFor => values("x-forwarded-for").flat_map(|v| v.split(',')).collect(),
        ClientIpHeader::XRealIp => values("x-real-ip").collect(),
        ClientIpHeader::Forwarded => values(header::FORWARDED.as_str())
            .flat_map(|v| v.split(','))
            .filter_map(|el| {
                el.split(';').find_map(|kv| {
                    let (k, v) = kv.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for").then_some(v)
                })
            })
            .collect(),
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(&client) {
                    break;
                }
            }
            // Garbage ends the walk: never fail open to whatever a client wrote further left.
            None => break,
        }
    }
    client
}

/// `1.2.3.4`, `"[2001:db8::1]:443"`, `1.2.3.4:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim().trim_matches('"');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next()?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    h.rsplit_once(':')?.0.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The resolved client IP and the user agent.
pub fn client_info(req: &Request) -> ClientInfo {
    ClientInfo {
        ip: req.extensions().get::<ClientIp>().map(|c| c.0),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(peer: &str, headers: &[(&'static str, &str)]) -> String {
        ip_with(ClientIpHeader::XForwardedFor, peer, headers)
    }

    fn ip_with(which: ClientIpHeader, peer: &str, headers: &[(&'static str, &str)]) -> String {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(*k, v.parse().unwrap());
        }
        let peer: IpAddr = peer.parse().unwrap();
        resolve(peer.to_canonical(), &h, &trusted, which).to_string()
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let xff = "x-forwarded-for";
        assert_eq!(ip("203.0.113.5", &[(xff, "1.1.1.1")]), "203.0.113.5", "untrusted peer: header ignored");
        assert_eq!(ip("10.0.0.2", &[(xff, "198.51.100.9")]), "198.51.100.9");
        assert_eq!(ip("10.0.0.2", &[(xff, "6.6.6.6, 198.51.100.9, 10.0.0.7")]), "198.51.100.9", "rightmost untrusted");
        assert_eq!(ip("10.0.0.2", &[(xff, "6.6.6.6"), (xff, "198.51.100.9")]), "198.51.100.9", "several lines");
        assert_eq!(ip("10.0.0.2", &[(xff, "6.6.6.6, garbage")]), "10.0.0.2", "garbage never fails open");
        assert_eq!(ip("10.0.0.2", &[]), "10.0.0.2");
        assert_eq!(ip("::ffff:10.0.0.2", &[(xff, "198.51.100.9")]), "198.51.100.9", "mapped IPv4 peer");
        let fwd = ClientIpHeader::Forwarded;
        assert_eq!(
            ip_with(fwd, "10.0.0.2", &[("forwarded", "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https")]),
            "2001:db8::1"
        );
        // Only the named header counts: a client-written X-Forwarded-For never beats Forwarded.
        assert_eq!(ip_with(fwd, "10.0.0.2", &[("forwarded", "for=198.51.100.9"), (xff, "6.6.6.6")]), "198.51.100.9");
        assert_eq!(ip("10.0.0.2", &[("forwarded", "for=6.6.6.6")]), "10.0.0.2", "Forwarded ignored when not named");
        let real = ClientIpHeader::XRealIp;
        assert_eq!(ip_with(real, "10.0.0.2", &[("x-real-ip", "198.51.100.9"), (xff, "6.6.6.6")]), "198.51.100.9");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn resolves_safely(which: ClientIpHeader, value: &str) -> Result<(), TestCaseError> {
            let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            let peer: IpAddr = "10.1.2.3".parse().unwrap();
            let mut h = HeaderMap::new();
            let Ok(v) = value.parse() else { return Ok(()) };
            for name in ["x-forwarded-for", "x-real-ip", "forwarded"] {
                h.append(name, poem::http::HeaderValue::clone(&v));
            }
            let got = resolve(peer, &h, &trusted, which);
            // The client is the peer, or an address written as one hop of the header.
            let written = value.split([',', ';', '=']).any(|part| parse_hop(part) == Some(got));
            prop_assert!(got == peer || written, "{value:?} gave {got}");
            Ok(())
        }

        proptest! {
            #[test]
            fn any_header_resolves_without_panicking(value in "[ -~]{0,200}") {
                for which in [ClientIpHeader::XForwardedFor, ClientIpHeader::XRealIp, ClientIpHeader::Forwarded] {
                    resolves_safely(which, &value)?;
                }
            }
        }

        #[test]
        fn the_seed_corpus_resolves() {
            for line in include_str!("../../fuzz/seeds/client_ip.txt").lines() {
                for which in [ClientIpHeader::XForwardedFor, ClientIpHeader::XRealIp, ClientIpHeader::Forwarded] {
                    resolves_safely(which, line).unwrap();
                }
            }
        }
    }
}
