//! The one host a request was sent to, decided once per request and used by
//! everything after it: the trusted-host and HTTPS-redirect layers, `request.url`,
//! and the access log.
//!
//! RFC 9112 §3.2.2: when the request target carries an authority (the absolute form
//! `GET http://example.com/ HTTP/1.1`, or HTTP/2's `:authority`), that authority is
//! the host and `Host` is ignored. A request whose authority and `Host` disagree is
//! refused (400) rather than answered for one while checked against the other, as is
//! an HTTP/1.1 request without `Host`, one with several, and a host that is not
//! `host[:port]`. `X-Forwarded-Host` replaces the host only when the server was told
//! to believe it, from a trusted proxy (see [`crate::proxy`]).
//!
//! ```
//! use data_bridge_api::host::is_valid;
//! assert!(is_valid("example.com:8000"));
//! assert!(is_valid("[::1]:443"));
//! assert!(!is_valid("evil.com/path"));
//! assert!(!is_valid("a b"));
//! ```

use http::{header, HeaderMap, Uri, Version};

use crate::errors::ApiError;

/// Whether `host` is `host[:port]` as RFC 3986 spells it: a bracketed IPv6 literal
/// or a registered name / IPv4 address (unreserved characters, `%` escapes and
/// sub-delimiters), then an optional port of at most five digits.
pub fn is_valid(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        if literal.is_empty()
            || !literal
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", port),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, port),
            None => (host, ""),
        }
    };
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        })
        && escapes_are_complete(name)
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
}

/// Whether every `%` in `name` starts a `%XX` escape (RFC 3986 §2.1).
fn escapes_are_complete(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

fn bad(why: &str) -> ApiError {
    ApiError::BadRequest(why.to_owned())
}

/// The host the request was sent to (`""` for an HTTP/1.0 request that named none),
/// or the 400 to answer. `forwarded` is what a trusted proxy's `X-Forwarded-Host`
/// said, when the server believes it; an invalid one is ignored.
pub fn resolve(
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
    forwarded: Option<&str>,
) -> Result<String, ApiError> {
    let mut values = headers.get_all(header::HOST).iter();
    let host_header = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            v.to_str()
                .ok()
                .filter(|h| is_valid(h))
                .ok_or_else(|| bad("Invalid Host header"))?,
        ),
        (Some(_), Some(_)) => return Err(bad("More than one Host header")),
    };
    let host = match (uri.authority().map(|a| a.as_str()), host_header) {
        (Some(authority), Some(host)) => {
            if !authority.eq_ignore_ascii_case(host) {
                return Err(bad("Host header does not match the request target"));
            }
            authority
        }
        (Some(authority), None) => authority,
        (None, Some(host)) => host,
        // HTTP/2 requests name their host in `:authority`; HTTP/1.0 may name none.
        (None, None) if version == Version::HTTP_11 => return Err(bad("Missing Host header")),
        (None, None) => "",
    };
    if !host.is_empty() && !is_valid(host) {
        return Err(bad("Invalid Host header"));
    }
    Ok(match forwarded.filter(|h| is_valid(h)) {
        Some(h) => h.to_owned(),
        None => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_host(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::HOST, HeaderValue::from_static(v));
        }
        h
    }

    fn status(r: Result<String, ApiError>) -> Result<String, u16> {
        r.map_err(|e| e.status().as_u16())
    }

    #[test]
    fn the_authority_wins_and_must_match_host() {
        let origin = Uri::from_static("/url");
        let absolute = Uri::from_static("http://evil.com/url");
        let v11 = Version::HTTP_11;
        let h = with_host(&["allowed.com"]);
        assert_eq!(
            status(resolve(&origin, v11, &h, None)),
            Ok("allowed.com".into())
        );
        assert_eq!(status(resolve(&absolute, v11, &h, None)), Err(400));
        let h = with_host(&["EVIL.com"]);
        assert_eq!(
            status(resolve(&absolute, v11, &h, None)),
            Ok("evil.com".into())
        );
        let none = HeaderMap::new();
        assert_eq!(
            status(resolve(&absolute, v11, &none, None)),
            Ok("evil.com".into())
        );
        assert_eq!(
            status(resolve(&absolute, Version::HTTP_2, &none, None)),
            Ok("evil.com".into())
        );
    }

    #[test]
    fn missing_duplicate_and_invalid_hosts_are_refused() {
        let origin = Uri::from_static("/");
        let none = HeaderMap::new();
        assert_eq!(
            status(resolve(&origin, Version::HTTP_11, &none, None)),
            Err(400)
        );
        assert_eq!(
            status(resolve(&origin, Version::HTTP_10, &none, None)),
            Ok(String::new())
        );
        let two = with_host(&["a.com", "a.com"]);
        assert_eq!(
            status(resolve(&origin, Version::HTTP_11, &two, None)),
            Err(400)
        );
        for bad in [
            "a.com/x",
            "a.com:80:80",
            "a b",
            "a.com:123456",
            "[::1",
            "[zz]",
            "",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static(bad));
            assert_eq!(
                status(resolve(&origin, Version::HTTP_11, &h, None)),
                Err(400),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_believed_forwarded_host_replaces_a_valid_one() {
        let origin = Uri::from_static("/");
        let h = with_host(&["internal:8000"]);
        let r = resolve(&origin, Version::HTTP_11, &h, Some("example.com"));
        assert_eq!(status(r), Ok("example.com".into()));
        let r = resolve(&origin, Version::HTTP_11, &h, Some("evil.com/x"));
        assert_eq!(status(r), Ok("internal:8000".into()));
    }

    #[test]
    fn valid_hosts() {
        for ok in [
            "a",
            "a.b.c:1",
            "127.0.0.1:8000",
            "[::1]",
            "[::1]:80",
            "x_y",
            "h:",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "", ":80", "[::1]x", "a\\b", "a@b", "a?b", "a#b", "%", "a%2", "a%zz",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    mod proptests {
        use proptest::prelude::*;

        use super::*;

        /// Host-like text: names, IPv6 literals, ports, and the characters that would
        /// let a host smuggle a path, credentials or a second header.
        fn host_like() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9.:_~%-]{0,20}",
                "\\[[0-9a-f:.]{0,12}\\](:[0-9]{0,7})?[a-z]{0,2}",
                "[a-z.]{0,6}[/?#@\\\\ \t\"<>\\[\\]{}|^`\u{80}-\u{10ffff}]{1,3}[a-z:0-9]{0,6}",
                "\\PC{0,12}",
            ]
        }

        proptest! {
            #[test]
            fn prop_valid_hosts_are_plain_authorities(host in host_like()) {
                if is_valid(&host) {
                    prop_assert!(!host.is_empty());
                    prop_assert!(
                        host.bytes().all(|b| b.is_ascii_graphic()
                            && !matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\' | b'"' | b'<' | b'>' | b'{' | b'}' | b'|' | b'^' | b'`')),
                        "{host:?}"
                    );
                    // Every `%` starts an escape.
                    let bytes = host.as_bytes();
                    for (i, _) in host.match_indices('%') {
                        prop_assert!(bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)), "{host:?}");
                    }
                    // Usable as the authority of a URL built from it (the `http` crate
                    // refuses escapes in an authority, which RFC 3986 allows).
                    if !host.contains('%') {
                        let uri: Result<Uri, _> = format!("http://{host}/").parse();
                        prop_assert!(
                            uri.as_ref().ok().and_then(Uri::authority).is_some_and(|a| a.as_str() == host),
                            "{host:?} -> {uri:?}"
                        );
                    }
                }
            }

            #[test]
            fn prop_resolved_hosts_are_valid(
                host in prop::option::of(host_like()),
                authority in prop::option::of(host_like()),
                forwarded in prop::option::of(host_like()),
                http2 in any::<bool>(),
            ) {
                let mut headers = HeaderMap::new();
                if let Some(value) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
                    headers.insert(header::HOST, value);
                }
                let uri = match authority.as_deref().map(|a| format!("http://{a}/x").parse::<Uri>()) {
                    Some(Ok(uri)) => uri,
                    _ => Uri::from_static("/x"),
                };
                let version = if http2 { Version::HTTP_2 } else { Version::HTTP_11 };
                match resolve(&uri, version, &headers, forwarded.as_deref()) {
                    Ok(resolved) => {
                        prop_assert!(resolved.is_empty() || is_valid(&resolved), "{resolved:?}");
                        prop_assert!(!resolved.is_empty() || version == Version::HTTP_2 || uri.authority().is_some() || headers.contains_key(header::HOST));
                    }
                    Err(err) => prop_assert_eq!(err.status().as_u16(), 400),
                }
            }
        }
    }
}
