//! Whose address a request comes from: the device's (recorded with its request,
//! and the key of the per-source budget) and the approver's (compared with the
//! device's at consent, and the key of the wrong-code budget).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::App;

/// Where the client address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAddress {
    /// The TCP connection's peer. Right when clients connect straight to this
    /// server.
    #[default]
    Peer,
    /// The last address in `X-Forwarded-For`, as appended by a reverse proxy in
    /// front of this server; the peer when the header is absent. Only behind a
    /// proxy that sets the header: anyone who reaches the server directly can
    /// write it, and so choose the address the consent page compares and the
    /// budgets count under.
    ForwardedFor,
}

impl std::str::FromStr for ClientAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "peer" => Ok(Self::Peer),
            "x-forwarded-for" => Ok(Self::ForwardedFor),
            _ => Err("expected `peer` or `x-forwarded-for`".to_owned()),
        }
    }
}

/// The client's address, when known.
pub(crate) struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<Arc<App>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = match state.client_address {
            ClientAddress::Peer => peer,
            ClientAddress::ForwardedFor => forwarded_for(&parts.headers).or(peer),
        };
        Ok(Self(ip))
    }
}

/// The last (the nearest proxy's) address of `X-Forwarded-For`.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|entry| !entry.is_empty())?;
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}
