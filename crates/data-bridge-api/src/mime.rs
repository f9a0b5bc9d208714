//! Content types of files by extension, for static files and `FileResponse`: the
//! `mime_guess` table (the types browsers and servers agree on), with the few entries
//! where it keeps an older name replaced by the registered one that Python's
//! `mimetypes`, and so Starlette, sends. The system's `mime.types` is not read, so a
//! file gets the same type on every machine.

use std::path::Path;

use http::HeaderValue;

/// Extensions (lower case) whose `mime_guess` type is a legacy alias.
const REGISTERED: &[(&str, &str)] = &[
    ("mjs", "text/javascript"),
    ("map", "application/json"),
    ("ico", "image/vnd.microsoft.icon"),
    ("woff", "font/woff"),
    ("otf", "font/otf"),
];

/// The `Content-Type` for a file named `path`; `application/octet-stream` when the
/// extension is unknown. `text/*` types get `; charset=utf-8`.
pub fn content_type(path: &Path) -> HeaderValue {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return HeaderValue::from_static("application/octet-stream");
    };
    let found = REGISTERED
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, t)| *t)
        .or_else(|| mime_guess::from_ext(ext).first_raw());
    match found {
        Some(t) if t.starts_with("text/") => HeaderValue::from_str(&format!("{t}; charset=utf-8"))
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        Some(t) => HeaderValue::from_static(t),
        None => HeaderValue::from_static("application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        let cases = [
            ("a/style.css", "text/css; charset=utf-8"),
            ("INDEX.HTML", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("logo.png", "image/png"),
            ("data.json", "application/json"),
            ("app.MJS", "text/javascript; charset=utf-8"),
            ("app.js.map", "application/json"),
            ("favicon.ico", "image/vnd.microsoft.icon"),
            ("font.woff", "font/woff"),
            ("font.woff2", "font/woff2"),
            ("notes.md", "text/markdown; charset=utf-8"),
            ("site.webmanifest", "application/manifest+json"),
            ("archive.tar.gz", "application/gzip"),
            ("blob", "application/octet-stream"),
            ("archive.unknown", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
    }
}
