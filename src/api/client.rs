//! Who is on the other end of a request.

use poem::{Request, http::header};

use crate::service::ClientInfo;

/// The socket peer address (forwarded headers are not trusted here) and the user agent.
pub fn client_info(req: &Request) -> ClientInfo {
    ClientInfo {
        ip: req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_canonical().to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect()),
    }
}
