//! Who is calling: the peer's address, or, when the peer is a trusted
//! proxy, the client its `X-Forwarded-For` names.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address. Behind trusted proxies it is the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to
/// its left were written by the client and prove nothing); otherwise the
/// peer. `None` when the peer is unknown.
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|h| h.trim().parse().ok())
        .collect();
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// Whether the client reached a trusted proxy over HTTPS: its
/// `X-Forwarded-Proto` says so and the peer is a trusted proxy. Anyone
/// else's header proves nothing.
pub fn over_https(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|p| trusted.iter().any(|net| net.contains(&p)))
        && headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The client of `request` as text, for the audit log and the ingest
/// jobs (`None`: unknown).
pub fn of_request(request: &axum::extract::Request, trusted: &[IpNet]) -> Option<String> {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    client_address(peer, request.headers(), trusted).map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.5, 10.0.0.2".parse().expect("v"),
        );
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        let other: IpAddr = "192.0.2.9".parse().expect("ip");
        assert_eq!(
            client_address(Some(proxy), &h, &trusted),
            Some("203.0.113.5".parse().expect("ip"))
        );
        assert_eq!(client_address(Some(other), &h, &trusted), Some(other));
        assert_eq!(
            client_address(Some(proxy), &HeaderMap::new(), &trusted),
            Some(proxy)
        );
        assert_eq!(client_address(None, &h, &trusted), None);
    }
}
