//! [`TrustedProxies`]: who the client is behind a reverse proxy.
//!
//! Behind a proxy every connection comes from the proxy's address, so the per-address limits
//! would throttle the whole shop as one client. `--trusted-proxy CIDR` names the proxies:
//! for a request whose connection comes from one of them, the client is read from
//! `X-Forwarded-For`, right to left, skipping the trusted proxies themselves (each proxy
//! appends the address it received from); the first address that is not a trusted proxy is
//! the client. A header from any other address is ignored, whatever it says: anyone can
//! write one. Connections from a trusted proxy are not capped per address either (it carries
//! many clients); the process-wide cap still holds.

use std::net::IpAddr;

use hyper::header::HeaderMap;
use ipnet::IpNet;

#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { networks }
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The client of a request whose connection comes from `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            // A hop that is not an address (`unknown`, garbage) ends what can be believed:
            // the last trusted address stands for the client.
            let Ok(address) = hop.parse::<IpAddr>() else {
                break;
            };
            if !self.trusts(address) {
                return canonical(address);
            }
        }
        peer
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) is
/// the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ])
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_header_from_an_untrusted_address_is_ignored() {
        let spoofed = headers(&["1.2.3.4"]);
        assert_eq!(
            proxies().client(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        let proxies = proxies();
        // The client wrote a first entry itself; the edge trusts only what its proxies added.
        let chain = headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &chain), ip("198.51.100.7"));
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.1"), &headers(&["::ffff:198.51.100.8"])),
            ip("198.51.100.8")
        );
        assert_eq!(
            proxies.client(ip("fd00::1"), &headers(&["2001:db8::5"])),
            ip("2001:db8::5")
        );
        // Nothing believable: the proxy stands for the client.
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &headers(&[])),
            ip("10.0.0.1")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &headers(&["198.51.100.7, unknown"])),
            ip("10.0.0.1")
        );
    }
}
