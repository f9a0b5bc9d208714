//! Proxy headers: behind a reverse proxy the TCP peer is the proxy, and the client's
//! address, the scheme it used and the host it asked for arrive in `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `X-Forwarded-Host`. They are believed only when the peer is
//! a trusted proxy (`--forwarded-allow-ips`), decided once per request here;
//! `X-Forwarded-Host` only when the server was also told to (`--forwarded-host`), since
//! most proxies pass a client's own `X-Forwarded-Host` through unchanged.
//!
//! ```
//! use data_bridge_api::proxy::TrustedProxies;
//! let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
//! assert!(trusted.contains("10.1.2.3".parse().unwrap()));
//! assert!(!trusted.contains("192.168.0.1".parse().unwrap()));
//! ```

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::errors::ApiError;

/// The proxies whose forwarded headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    any: bool,
    nets: Vec<(IpAddr, u8)>,
    /// Whether `X-Forwarded-Host` is believed too.
    host: bool,
}

/// What the forwarded headers say about a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    /// The client, if `X-Forwarded-For` named one (port 0): `Some(None)` when the
    /// nearest hop that is not a trusted proxy is not an address, so the client is
    /// unknown (never a hop further left, which the client itself may have written).
    pub client: Option<Option<SocketAddr>>,
    /// `http` or `https` (also `ws`/`wss`), if a trusted proxy said.
    pub scheme: Option<&'static str>,
    /// The host the client asked for, if a trusted proxy said and the server believes
    /// `X-Forwarded-Host`.
    pub host: Option<String>,
}

fn bad(spec: &str) -> ApiError {
    ApiError::Config(format!(
        "forwarded-allow-ips: {spec:?} is not an IP address, a network such as 10.0.0.0/8, or *"
    ))
}

fn masked(ip: IpAddr, prefix: u8) -> u128 {
    let (bits, width) = match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32),
        IpAddr::V6(v6) => (u128::from(v6), 128u32),
    };
    let keep = u32::from(prefix).min(width);
    if keep == 0 {
        0
    } else {
        bits >> (width - keep)
    }
}

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and networks (`10.0.0.0/8`,
    /// `::1`), or `*` for every peer.
    pub fn parse(spec: &str) -> Result<Self, ApiError> {
        let mut trusted = TrustedProxies::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                trusted.any = true;
                continue;
            }
            let (addr, prefix) = match item.split_once('/') {
                Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad(item))?)),
                None => (item, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad(item))?;
            let ip = ip.to_canonical();
            let width = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(width);
            if prefix > width {
                return Err(bad(item));
            }
            trusted.nets.push((ip, prefix));
        }
        Ok(trusted)
    }

    /// These proxies, believing their `X-Forwarded-Host` too when `host` is set.
    pub fn with_forwarded_host(mut self, host: bool) -> Self {
        self.host = host;
        self
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|(net, prefix)| {
            net.is_ipv4() == ip.is_ipv4() && masked(*net, *prefix) == masked(ip, *prefix)
        })
    }

    /// What the headers say, if `peer` is trusted (a Unix socket peer, `None`, is: only
    /// local processes allowed by the socket file's permissions can connect). The client
    /// is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<Forwarded> {
        if peer.is_some_and(|p| !self.contains(p.ip())) {
            return None;
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            match value.to_str() {
                Ok(text) => hops.extend(text.split(',').map(parse_hop)),
                Err(_) => hops.push(None),
            }
        }
        let nearest_untrusted = hops
            .iter()
            .rev()
            .find(|hop| hop.is_none_or(|ip| !self.contains(ip)));
        // Every hop a trusted proxy: the first one is where the request came from.
        let client = nearest_untrusted
            .or(hops.first())
            .map(|hop| hop.map(|ip| SocketAddr::new(ip, 0)));
        let scheme = last_value(headers, "x-forwarded-proto").and_then(|p| {
            match p.to_ascii_lowercase().as_str() {
                "http" => Some("http"),
                "https" => Some("https"),
                "ws" => Some("ws"),
                "wss" => Some("wss"),
                _ => None,
            }
        });
        let host = self
            .host
            .then(|| last_value(headers, "x-forwarded-host"))
            .flatten()
            .filter(|h| crate::host::is_valid(h))
            .map(str::to_owned);
        Some(Forwarded {
            client,
            scheme,
            host,
        })
    }
}

/// The last comma-separated value of the last `name` header (the one the nearest
/// proxy set).
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next().map(str::trim)
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let s = raw.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn peer(s: &str) -> Option<SocketAddr> {
        s.parse().ok()
    }

    #[test]
    fn parses_addresses_networks_and_star() -> Result<(), ApiError> {
        let t = TrustedProxies::parse("127.0.0.1,10.0.0.0/8, ::1 ,fd00::/8")?;
        assert!(t.contains("127.0.0.1".parse().map_err(|_| bad("x"))?));
        assert!(t.contains("::ffff:127.0.0.1".parse().map_err(|_| bad("x"))?));
        assert!(t.contains("10.255.0.1".parse().map_err(|_| bad("x"))?));
        assert!(t.contains("fd12::1".parse().map_err(|_| bad("x"))?));
        assert!(!t.contains("11.0.0.1".parse().map_err(|_| bad("x"))?));
        assert!(TrustedProxies::parse("*")?.contains("8.8.8.8".parse().map_err(|_| bad("x"))?));
        assert!(TrustedProxies::parse("nope").is_err());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        Ok(())
    }

    #[test]
    fn untrusted_peers_are_ignored() -> Result<(), ApiError> {
        let t = TrustedProxies::parse("127.0.0.1")?;
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(t.resolve(peer("192.168.1.1:80"), &h), None);
        Ok(())
    }

    #[test]
    fn the_client_is_the_last_untrusted_hop() -> Result<(), ApiError> {
        let t = TrustedProxies::parse("127.0.0.1,10.0.0.0/8")?.with_forwarded_host(true);
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "example.com"),
        ]);
        let f = t.resolve(peer("127.0.0.1:9000"), &h);
        assert_eq!(
            f,
            Some(Forwarded {
                client: Some(peer("1.2.3.4:0")),
                scheme: Some("https"),
                host: Some("example.com".into()),
            })
        );
        let h = headers(&[("x-forwarded-for", "[::1]:5000, 10.0.0.9")]);
        let f = t.resolve(None, &h);
        assert_eq!(f.and_then(|f| f.client), Some(peer("[::1]:0")));
        Ok(())
    }

    #[test]
    fn junk_is_ignored() -> Result<(), ApiError> {
        let t = TrustedProxies::parse("*")?;
        let h = headers(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(t.resolve(peer("1.1.1.1:1"), &h), Some(Forwarded::default()));
        Ok(())
    }

    #[test]
    fn an_unparsable_hop_is_the_client() -> Result<(), ApiError> {
        let t = TrustedProxies::parse("127.0.0.1")?;
        let h = headers(&[("x-forwarded-for", "6.6.6.6, junk, 127.0.0.1")]);
        let f = t.resolve(peer("127.0.0.1:1"), &h);
        assert_eq!(f.and_then(|f| f.client), Some(None));
        Ok(())
    }

    #[test]
    fn forwarded_host_is_believed_only_when_asked() -> Result<(), ApiError> {
        let h = headers(&[("x-forwarded-host", "example.com")]);
        let off = TrustedProxies::parse("*")?;
        assert_eq!(off.resolve(None, &h).and_then(|f| f.host), None);
        let on = off.with_forwarded_host(true);
        assert_eq!(
            on.resolve(None, &h).and_then(|f| f.host),
            Some("example.com".into())
        );
        let h = headers(&[("x-forwarded-host", "evil.com/path")]);
        assert_eq!(on.resolve(None, &h).and_then(|f| f.host), None);
        Ok(())
    }

    mod proptests {
        use std::net::{Ipv4Addr, Ipv6Addr};

        use proptest::prelude::*;

        use super::*;

        /// Addresses clustered in few networks, so that trusted and untrusted hops mix.
        fn ip() -> impl Strategy<Value = IpAddr> {
            prop_oneof![
                (0u8..2, 0u8..3).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, a, 0, b))),
                (0u8..3).prop_map(|b| IpAddr::V4(Ipv4Addr::new(127, 0, 0, b))),
                (0u8..3).prop_map(|b| IpAddr::V4(Ipv4Addr::new(6, 6, 6, b))),
                (0u16..3).prop_map(|b| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, b))),
                (0u8..3).prop_map(|b| IpAddr::V6(Ipv4Addr::new(10, 0, 0, b).to_ipv6_mapped())),
                any::<IpAddr>(),
            ]
        }

        /// One `X-Forwarded-For` entry as proxies and clients write them, or junk.
        fn hop() -> impl Strategy<Value = String> {
            prop_oneof![
                ip().prop_map(|ip| ip.to_string()),
                (ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port).to_string()),
                (ip(), prop::sample::select(vec![" ", "  ", "\t"]))
                    .prop_map(|(ip, pad)| format!("{pad}{ip}{pad}")),
                "[ -~]{0,10}",
            ]
        }

        fn spec() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::collection::vec(
                    prop_oneof![
                        (ip(), prop::option::of(0u8..140)).prop_map(|(ip, prefix)| match prefix {
                            Some(p) => format!("{ip}/{p}"),
                            None => ip.to_string(),
                        }),
                        Just("*".to_owned()),
                        "[ -~]{0,8}",
                    ],
                    0..4,
                )
                .prop_map(|items| items.join(",")),
                "\\PC{0,20}",
            ]
        }

        proptest! {
            #[test]
            fn prop_parsed_networks_contain_their_address(ip in ip(), prefix in 0u8..=128) {
                let prefix = if ip.to_canonical().is_ipv4() { prefix % 33 } else { prefix };
                let trusted = TrustedProxies::parse(&format!("{ip}/{prefix}"));
                prop_assert!(trusted.is_ok_and(|t| t.contains(ip)), "{ip}/{prefix}");
            }

            #[test]
            fn prop_the_client_is_the_nearest_untrusted_hop(
                spec in spec(),
                peer in ip(),
                lines in prop::collection::vec(prop::collection::vec(hop(), 0..5), 0..3),
                proto in prop::option::of("[a-zA-Z ,]{0,8}"),
                host in prop::option::of("[ -~]{0,12}"),
                believe_host in any::<bool>(),
            ) {
                let Ok(trusted) = TrustedProxies::parse(&spec) else {
                    return Ok(());
                };
                let trusted = trusted.with_forwarded_host(believe_host);
                let mut headers = HeaderMap::new();
                for line in &lines {
                    if let Ok(value) = HeaderValue::from_str(&line.join(",")) {
                        headers.append("x-forwarded-for", value);
                    }
                }
                for (name, value) in [("x-forwarded-proto", &proto), ("x-forwarded-host", &host)] {
                    if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                        headers.insert(name, value);
                    }
                }
                let peer = SocketAddr::new(peer, 1234);
                let Some(forwarded) = trusted.resolve(Some(peer), &headers) else {
                    prop_assert!(!trusted.contains(peer.ip()));
                    return Ok(());
                };
                prop_assert!(trusted.contains(peer.ip()));
                let hops: Vec<Option<IpAddr>> = headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(',').map(parse_hop).collect::<Vec<_>>())
                    .collect();
                match forwarded.client {
                    None => prop_assert!(hops.is_empty()),
                    Some(client) => {
                        let client = client.map(|c| c.ip());
                        // Never a hop left of an untrusted one: the client could have written it.
                        let nearest = hops.iter().rev().find(|h| h.is_none_or(|ip| !trusted.contains(ip)));
                        match nearest {
                            Some(hop) => prop_assert_eq!(client, *hop),
                            None => prop_assert_eq!(Some(client), hops.first().copied()),
                        }
                        prop_assert_eq!(client.map(|ip| ip.to_canonical()), client);
                    }
                }
                prop_assert!(forwarded.scheme.is_none_or(|s| matches!(s, "http" | "https" | "ws" | "wss")));
                prop_assert!(forwarded.host.is_none() || believe_host);
                prop_assert!(forwarded.host.as_deref().is_none_or(crate::host::is_valid));
            }
        }
    }
}
