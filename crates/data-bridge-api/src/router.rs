//! The router: FastAPI-style path templates (`/users/{user_id}`,
//! `/files/{path:path}`) matched in Rust, with path parameters converted and
//! validated against their declared types before any Python runs.
//!
//! ```
//! use data_bridge_api::router::{ParamKind, Router};
//! let mut router: Router<&str> = Router::default();
//! router.add(&["GET"], "/users/{id}", &[("id", ParamKind::Int)], "user").unwrap();
//! let found = router.find(&http::Method::GET, "/users/42").unwrap();
//! assert_eq!(*found.endpoint, "user");
//! ```

use std::collections::HashMap;

use http::Method;

use crate::errors::{json_string, ApiError};

/// The declared type of a path parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    /// Any string (the default).
    Str,
    /// An integer.
    Int,
    /// A float.
    Float,
    /// A boolean with pydantic's spellings (`true`, `1`, `yes`, `on`, ...).
    Bool,
    /// A UUID in its usual text forms.
    Uuid,
    /// The rest of the path, slashes included (`{name:path}`).
    Path,
    /// One of the listed values (an `Enum` whose values are strings).
    Choice(Vec<String>),
}

/// A converted path parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// A string (also used for `Path`, `Uuid` and `Choice`, converted in Python).
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// The pseudo-method WebSocket routes are added under: a handshake is looked up with
/// it, and HTTP requests never see those routes (a plain `GET` of a WebSocket-only
/// path is a 404, as in Starlette).
pub const WEBSOCKET_METHOD: &str = "WEBSOCKET";

struct Slot<E> {
    template: String,
    params: Vec<(String, ParamKind)>,
    by_method: Vec<(Method, E)>,
}

/// Routes: path templates to endpoints, per method.
pub struct Router<E> {
    tree: matchit::Router<usize>,
    slots: Vec<Slot<E>>,
    by_template: HashMap<String, usize>,
}

impl<E> Default for Router<E> {
    fn default() -> Self {
        Router {
            tree: matchit::Router::new(),
            slots: Vec::new(),
            by_template: HashMap::new(),
        }
    }
}

/// A successful lookup.
pub struct Found<'a, E> {
    /// The endpoint for the method.
    pub endpoint: &'a E,
    /// The converted path parameters, in template order.
    pub params: Vec<(String, ParamValue)>,
    /// The route's template, e.g. `/users/{user_id}`.
    pub template: &'a str,
    /// The route's index, in the order of [`Router::templates`].
    pub route: usize,
}

/// Turns `/files/{p:path}` into matchit's `/files/{*p}` and lists the parameters.
fn compile(template: &str) -> Result<(String, Vec<(String, bool)>), ApiError> {
    let mut out = String::with_capacity(template.len());
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(ApiError::RouteConflict(format!(
                "unclosed '{{' in route {template:?}"
            )));
        };
        let inner = &rest[open + 1..open + close];
        let (name, is_path) = match inner.split_once(':') {
            Some((n, "path")) => (n, true),
            Some((_, conv)) => {
                return Err(ApiError::RouteConflict(format!(
                    "unknown converter {conv:?} in route {template:?}"
                )))
            }
            None => (inner, false),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(ApiError::RouteConflict(format!(
                "bad parameter name {name:?} in route {template:?}"
            )));
        }
        if is_path {
            out.push_str("{*");
        } else {
            out.push('{');
        }
        out.push_str(name);
        out.push('}');
        names.push((name.to_owned(), is_path));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok((out, names))
}

/// Decodes the `%XX` escapes of a path parameter; a `%` not followed by two hex
/// digits is kept as it is, as Starlette does.
fn percent_decode(raw: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ApiError::BadRequest("path is not valid UTF-8".into()))
}

fn error_item(kind: &str, name: &str, msg: &str, input: &str) -> String {
    format!(
        "{{\"type\":{},\"loc\":[\"path\",{}],\"msg\":{},\"input\":{}}}",
        json_string(kind),
        json_string(name),
        json_string(msg),
        json_string(input)
    )
}

/// Whether `uuid.UUID(s)` accepts `s`: optional `urn:`/`uuid:` prefixes and braces
/// around the whole value, hyphens anywhere, 32 hex digits.
fn is_uuid(s: &str) -> bool {
    let s = s.strip_prefix("urn:").unwrap_or(s);
    let s = s.strip_prefix("uuid:").unwrap_or(s);
    let s = s.trim_start_matches('{').trim_end_matches('}');
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Converts `raw` to `kind`, or returns the FastAPI-style error item.
pub fn convert(name: &str, kind: &ParamKind, raw: &str) -> Result<ParamValue, String> {
    match kind {
        ParamKind::Str | ParamKind::Path => Ok(ParamValue::Str(raw.to_owned())),
        ParamKind::Int => raw.trim().parse::<i64>().map(ParamValue::Int).map_err(|_| {
            error_item(
                "int_parsing",
                name,
                "Input should be a valid integer, unable to parse string as an integer",
                raw,
            )
        }),
        ParamKind::Float => raw
            .trim()
            .parse::<f64>()
            .map(ParamValue::Float)
            .map_err(|_| {
                error_item(
                    "float_parsing",
                    name,
                    "Input should be a valid number, unable to parse string as a number",
                    raw,
                )
            }),
        ParamKind::Bool => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Ok(ParamValue::Bool(true)),
            "0" | "false" | "f" | "no" | "n" | "off" => Ok(ParamValue::Bool(false)),
            _ => Err(error_item(
                "bool_parsing",
                name,
                "Input should be a valid boolean, unable to interpret input",
                raw,
            )),
        },
        ParamKind::Uuid => {
            if is_uuid(raw) {
                Ok(ParamValue::Str(raw.to_owned()))
            } else {
                Err(error_item(
                    "uuid_parsing",
                    name,
                    "Input should be a valid UUID",
                    raw,
                ))
            }
        }
        ParamKind::Choice(values) => {
            if values.iter().any(|v| v == raw) {
                Ok(ParamValue::Str(raw.to_owned()))
            } else {
                let listed: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                let msg = match listed.split_last() {
                    Some((last, [])) => format!("Input should be {last}"),
                    Some((last, rest)) => format!("Input should be {} or {last}", rest.join(", ")),
                    None => "Input should be a valid choice".to_owned(),
                };
                Err(error_item("enum", name, &msg, raw))
            }
        }
    }
}

impl<E> Router<E> {
    /// Adds `endpoint` for `methods` on `template`; `params` declares parameter types
    /// (undeclared ones are strings). Conflicting definitions are an error.
    pub fn add(
        &mut self,
        methods: &[&str],
        template: &str,
        params: &[(&str, ParamKind)],
        endpoint: E,
    ) -> Result<(), ApiError>
    where
        E: Clone,
    {
        if !template.starts_with('/') {
            return Err(ApiError::RouteConflict(format!(
                "route {template:?} must start with '/'"
            )));
        }
        let (pattern, names) = compile(template)?;
        let declared: Vec<(String, ParamKind)> = names
            .iter()
            .map(|(n, is_path)| {
                let kind = if *is_path {
                    ParamKind::Path
                } else {
                    params
                        .iter()
                        .find(|(p, _)| p == n)
                        .map(|(_, k)| k.clone())
                        .unwrap_or(ParamKind::Str)
                };
                (n.clone(), kind)
            })
            .collect();
        let index = match self.by_template.get(&pattern) {
            Some(&i) => i,
            None => {
                let i = self.slots.len();
                self.tree.insert(pattern.clone(), i).map_err(|e| {
                    ApiError::RouteConflict(format!(
                        "route {template:?} conflicts with an existing route: {e}"
                    ))
                })?;
                self.slots.push(Slot {
                    template: template.to_owned(),
                    params: declared,
                    by_method: Vec::new(),
                });
                self.by_template.insert(pattern, i);
                i
            }
        };
        let slot = &mut self.slots[index];
        for m in methods {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| ApiError::RouteConflict(format!("bad HTTP method {m:?}")))?;
            if slot
                .by_method
                .iter()
                .any(|(existing, _)| *existing == method)
            {
                return Err(ApiError::RouteConflict(format!(
                    "route {method} {template:?} is defined twice"
                )));
            }
            slot.by_method.push((method, endpoint.clone()));
        }
        Ok(())
    }

    /// Finds the endpoint for `method` and `path`, converting path parameters.
    /// `HEAD` falls back to `GET`.
    pub fn find(&self, method: &Method, path: &str) -> Result<Found<'_, E>, ApiError> {
        let matched = self.tree.at(path).map_err(|_| ApiError::NotFound)?;
        let slot = self.slots.get(*matched.value).ok_or(ApiError::NotFound)?;
        let endpoint = slot
            .by_method
            .iter()
            .find(|(m, _)| m == method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| slot.by_method.iter().find(|(m, _)| *m == Method::GET))
                    .flatten()
            })
            .map(|(_, e)| e)
            .ok_or_else(|| {
                if slot
                    .by_method
                    .iter()
                    .all(|(m, _)| m.as_str() == WEBSOCKET_METHOD)
                {
                    ApiError::NotFound
                } else {
                    ApiError::MethodNotAllowed {
                        allow: Self::allow(slot),
                    }
                }
            })?;
        let mut params = Vec::with_capacity(slot.params.len());
        let mut errors = Vec::new();
        for (name, kind) in &slot.params {
            let raw = matched.params.get(name).unwrap_or("");
            let decoded = percent_decode(raw)?;
            match convert(name, kind, &decoded) {
                Ok(v) => params.push((name.clone(), v)),
                Err(item) => errors.push(item),
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(format!("[{}]", errors.join(","))));
        }
        Ok(Found {
            endpoint,
            params,
            template: &slot.template,
            route: *matched.value,
        })
    }

    /// The template of every route, in route order.
    pub fn templates(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.template.clone()).collect()
    }

    /// Every endpoint of every route.
    pub fn endpoints(&self) -> impl Iterator<Item = &E> {
        self.slots
            .iter()
            .flat_map(|s| s.by_method.iter().map(|(_, e)| e))
    }

    /// The route index a lookup of `method` and `path` reports, even when it fails
    /// (405, 422): `None` only if no route matches the path.
    pub fn route_of(&self, path: &str) -> Option<usize> {
        self.tree.at(path).ok().map(|m| *m.value)
    }

    /// The `Allow` header for `path`, if it is routed.
    pub fn allowed(&self, path: &str) -> Option<String> {
        let matched = self.tree.at(path).ok()?;
        self.slots.get(*matched.value).map(Self::allow)
    }

    fn allow(slot: &Slot<E>) -> String {
        let mut methods: Vec<&str> = slot
            .by_method
            .iter()
            .map(|(m, _)| m.as_str())
            .filter(|m| *m != WEBSOCKET_METHOD)
            .collect();
        if methods.contains(&"GET") && !methods.contains(&"HEAD") {
            methods.push("HEAD");
        }
        if !methods.contains(&"OPTIONS") {
            methods.push("OPTIONS");
        }
        methods.join(", ")
    }

    /// The declared kind of each parameter of `template`'s route.
    pub fn params_of(&self, template: &str) -> Option<&[(String, ParamKind)]> {
        self.slots
            .iter()
            .find(|s| s.template == template)
            .map(|s| s.params.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<u32> {
        let mut r = Router::default();
        r.add(&["GET"], "/users/{id}", &[("id", ParamKind::Int)], 1)
            .ok();
        r.add(&["POST"], "/users/{id}", &[("id", ParamKind::Int)], 2)
            .ok();
        r.add(&["GET"], "/users/me", &[], 3).ok();
        r.add(&["GET"], "/files/{rest:path}", &[], 4).ok();
        r
    }

    #[test]
    fn static_segments_win_over_parameters() {
        let r = router();
        assert!(matches!(r.find(&Method::GET, "/users/me"), Ok(f) if *f.endpoint == 3));
        let found = r.find(&Method::GET, "/users/7");
        assert!(
            matches!(found, Ok(ref f) if *f.endpoint == 1 && f.params == vec![("id".to_owned(), ParamValue::Int(7))])
        );
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        let r = router();
        match r.find(&Method::DELETE, "/users/7") {
            Err(ApiError::MethodNotAllowed { allow }) => {
                assert_eq!(allow, "GET, POST, HEAD, OPTIONS")
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(
            r.find(&Method::GET, "/nope"),
            Err(ApiError::NotFound)
        ));
    }

    #[test]
    fn head_falls_back_to_get_and_paths_catch_all() {
        let r = router();
        assert!(matches!(r.find(&Method::HEAD, "/users/1"), Ok(f) if *f.endpoint == 1));
        let found = r.find(&Method::GET, "/files/a/b%20c.txt");
        assert!(
            matches!(found, Ok(ref f) if f.params == vec![("rest".to_owned(), ParamValue::Str("a/b c.txt".into()))])
        );
    }

    #[test]
    fn websocket_routes_are_hidden_from_http_methods() {
        let mut r = router();
        r.add(&[WEBSOCKET_METHOD], "/ws", &[], 5).ok();
        r.add(
            &[WEBSOCKET_METHOD],
            "/users/{id}",
            &[("id", ParamKind::Int)],
            6,
        )
        .ok();
        assert!(matches!(
            r.find(&Method::GET, "/ws"),
            Err(ApiError::NotFound)
        ));
        let ws = Method::from_bytes(WEBSOCKET_METHOD.as_bytes()).ok();
        assert!(ws.is_some_and(|m| matches!(r.find(&m, "/ws"), Ok(f) if *f.endpoint == 5)));
        match r.find(&Method::DELETE, "/users/7") {
            Err(ApiError::MethodNotAllowed { allow }) => {
                assert_eq!(allow, "GET, POST, HEAD, OPTIONS")
            }
            _ => panic!("expected 405"),
        }
    }

    #[test]
    fn invalid_parameters_are_validation_errors() {
        let r = router();
        match r.find(&Method::GET, "/users/abc") {
            Err(ApiError::Validation(detail)) => {
                assert!(detail.contains("int_parsing") && detail.contains("[\"path\",\"id\"]"))
            }
            _ => panic!("expected 422"),
        }
    }

    #[test]
    fn conflicts_are_rejected() {
        let mut r = router();
        assert!(r.add(&["GET"], "/users/{id}", &[], 9).is_err());
        assert!(r.add(&["GET"], "/users/{other}", &[], 9).is_err());
        assert!(r.add(&["GET"], "no-slash", &[], 9).is_err());
        assert!(r.add(&["GET"], "/x/{a:int}", &[], 9).is_err());
    }

    #[test]
    fn conversions() {
        assert_eq!(
            convert("b", &ParamKind::Bool, "Yes"),
            Ok(ParamValue::Bool(true))
        );
        assert!(convert("b", &ParamKind::Bool, "maybe").is_err());
        assert_eq!(
            convert("f", &ParamKind::Float, "1.5"),
            Ok(ParamValue::Float(1.5))
        );
        assert!(convert(
            "u",
            &ParamKind::Uuid,
            "12345678-1234-5678-1234-567812345678"
        )
        .is_ok());
        assert!(convert("u", &ParamKind::Uuid, "nope").is_err());
        assert!(convert("u", &ParamKind::Uuid, "{12345678123456781234567812345678}").is_ok());
        assert!(convert(
            "u",
            &ParamKind::Uuid,
            "12345678-1234-5678-1234-56781234{5678}"
        )
        .is_err());
        let choice = ParamKind::Choice(vec!["a".into(), "b".into()]);
        let err = convert("c", &choice, "z").err().unwrap_or_default();
        assert!(err.contains("Input should be 'a' or 'b'"));
    }

    mod proptests {
        use proptest::prelude::*;
        use proptest::test_runner::TestCaseError;

        use super::*;

        /// Every parameter kind, on routes that share prefixes and overlap.
        fn typed_router() -> Router<u32> {
            let mut r = router();
            let choice = ParamKind::Choice(vec!["red".into(), "green".into()]);
            let routes: [(&str, &str, ParamKind); 6] = [
                ("/i/{v}", "v", ParamKind::Int),
                ("/f/{v}", "v", ParamKind::Float),
                ("/b/{v}", "v", ParamKind::Bool),
                ("/u/{v}", "v", ParamKind::Uuid),
                ("/c/{v}", "v", choice),
                ("/s/{v}/x", "v", ParamKind::Str),
            ];
            for (i, (template, name, kind)) in routes.into_iter().enumerate() {
                let added = r.add(&["GET", "PUT"], template, &[(name, kind)], 10 + i as u32);
                assert!(added.is_ok(), "{template}");
            }
            r
        }

        /// Paths made of the pieces routers trip on: escapes (valid, truncated, not
        /// UTF-8), dots, empty segments, route prefixes and arbitrary text.
        fn path() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                Just(String::new()),
                Just("users".to_owned()),
                Just("files".to_owned()),
                Just("me".to_owned()),
                prop::sample::select(vec!["i", "f", "b", "u", "c", "s", "x"])
                    .prop_map(str::to_owned),
                Just("..".to_owned()),
                Just("%".to_owned()),
                Just("%2".to_owned()),
                Just("%ff%fe".to_owned()),
                Just("%c3%28".to_owned()),
                Just("%2F%00".to_owned()),
                Just("12345678-1234-5678-1234-567812345678".to_owned()),
                "-?[0-9]{1,25}(\\.[0-9]{0,5})?",
                "[a-zA-Z0-9%._~{}*:-]{0,12}",
                "\\PC{0,8}",
            ];
            prop::collection::vec(segment, 0..6)
                .prop_map(|segments| format!("/{}", segments.join("/")))
        }

        fn method() -> impl Strategy<Value = Method> {
            prop::sample::select(vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
                Method::PATCH,
            ])
        }

        fn body_json(
            resp: http::Response<crate::body::Body>,
        ) -> Result<serde_json::Value, TestCaseError> {
            let bytes = match resp.into_body() {
                crate::body::Body::Full(bytes) => bytes.unwrap_or_default(),
                crate::body::Body::Stream(_) => {
                    return Err(TestCaseError::fail("streamed error body"))
                }
            };
            serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("{e}: {bytes:?}")))
        }

        proptest! {
            #[test]
            fn prop_any_path_matches_or_answers_json(method in method(), path in path()) {
                let r = typed_router();
                match r.find(&method, &path) {
                    Ok(found) => {
                        let declared = r.params_of(found.template).map_or(0, <[_]>::len);
                        prop_assert_eq!(found.params.len(), declared);
                        prop_assert_eq!(r.route_of(&path), Some(found.route));
                    }
                    Err(err) => {
                        let status = err.status().as_u16();
                        // 400 when an escape decodes to bytes that are not UTF-8.
                        prop_assert!(matches!(status, 400 | 404 | 405 | 422), "{status} for {path:?}");
                        if status == 404 {
                            prop_assert!(r.route_of(&path).is_none());
                        }
                        let body = body_json(err.into_response())?;
                        prop_assert!(body.get("detail").is_some(), "{body}");
                    }
                }
            }

            #[test]
            fn prop_conversion_accepts_what_it_claims(raw in "\\PC{0,40}|[ \t]*-?[0-9]{1,22}[ \t]*") {
                for kind in [ParamKind::Int, ParamKind::Float, ParamKind::Bool, ParamKind::Uuid] {
                    match convert("p", &kind, &raw) {
                        Ok(ParamValue::Int(n)) => prop_assert_eq!(raw.trim().parse::<i64>().ok(), Some(n)),
                        Ok(ParamValue::Bool(_)) => prop_assert!(raw.len() <= 5),
                        Ok(ParamValue::Str(s)) => prop_assert!(is_uuid(&s)),
                        Ok(ParamValue::Float(_)) => prop_assert!(raw.trim().parse::<f64>().is_ok()),
                        Err(item) => {
                            let parsed: serde_json::Value = serde_json::from_str(&item)
                                .map_err(|e| TestCaseError::fail(format!("{e}: {item}")))?;
                            prop_assert_eq!(&parsed["input"], &serde_json::Value::String(raw.clone()));
                        }
                    }
                }
            }
        }
    }
}
