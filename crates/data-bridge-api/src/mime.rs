//! Content types of files by extension, for static files and `FileResponse`. A short
//! table of what web applications serve (the types nginx and browsers agree on)
//! rather than the system's `mime.types`, so a file gets the same type everywhere.

use std::path::Path;

use http::HeaderValue;

/// Extension (lower case) → media type; `text/*` types get `; charset=utf-8`.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html"),
    ("htm", "text/html"),
    ("css", "text/css"),
    ("js", "text/javascript"),
    ("mjs", "text/javascript"),
    ("txt", "text/plain"),
    ("md", "text/markdown"),
    ("csv", "text/csv"),
    ("xml", "text/xml"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("svg", "image/svg+xml"),
    ("ico", "image/vnd.microsoft.icon"),
    ("bmp", "image/bmp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
];

/// The `Content-Type` for a file named `path`; `application/octet-stream` when the
/// extension is unknown.
pub fn content_type(path: &Path) -> HeaderValue {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let found = ext
        .as_deref()
        .and_then(|ext| TYPES.iter().find(|(e, _)| *e == ext))
        .map(|(_, t)| *t);
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
            ("blob", "application/octet-stream"),
            ("archive.unknown", "application/octet-stream"),
        ];
        for (name, want) in cases {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
    }
}
