//! The web app's files, served at `/` beside the API: one server, one origin, so the app's
//! requests and its WebSocket need no CORS. A release binary carries the app (`build.rs`
//! embeds `web/dist`); `web_dir` (`serve --web DIR`) serves a directory instead.
//!
//! Only plain names are served (letters, digits, `.`, `-`, `_` in each path segment, none
//! starting with a dot): nothing outside the directory, no hidden file, whatever the request
//! spells. Everything else keeps the API's JSON `not_found`.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::AppState;

/// What the app's pages may load and reach: its own files and its own server, WebAssembly
/// compiled from them, and nothing inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// The web app built into this binary (by path, sorted; empty in debug builds).
static EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/embedded_web.rs"));

/// Whether this binary carries the web app.
pub fn embedded() -> bool {
    !EMBEDDED.is_empty()
}

/// Every request no route took: a file of the web app, or `not_found`.
pub async fn serve(State(state): State<AppState>, method: Method, uri: Uri) -> Response {
    let not_found = || AppError::not_found("no such route").into_response();
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    let Some(relative) = file_path(uri.path()) else {
        return not_found();
    };
    let bytes = match state.config().web_dir.as_ref() {
        Some(dir) => match tokio::fs::read(dir.join(&relative)).await {
            Ok(b) => axum::body::Bytes::from(b),
            Err(_) => return not_found(),
        },
        None => match EMBEDDED.binary_search_by(|(name, _)| (*name).cmp(relative.as_str())) {
            Ok(i) => axum::body::Bytes::from_static(EMBEDDED[i].1),
            Err(_) => return not_found(),
        },
    };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type(&relative)),
    );
    // Always revalidated: a new release is picked up on the next load.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The file a request path names, relative to the web directory (`/` is `index.html`); `None`
/// for anything but plain names.
fn file_path(path: &str) -> Option<String> {
    let trimmed = path.strip_prefix('/')?;
    if trimmed.is_empty() {
        return Some("index.html".into());
    }
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if trimmed.split('/').all(plain) {
        Some(trimmed.to_owned())
    } else {
        None
    }
}

fn media_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_served() {
        assert_eq!(file_path("/").as_deref(), Some("index.html"));
        assert_eq!(file_path("/app.js").as_deref(), Some("app.js"));
        assert_eq!(
            file_path("/pkg/missive_web_bg.wasm").as_deref(),
            Some("pkg/missive_web_bg.wasm")
        );
        for refused in [
            "/../secret",
            "/pkg/../../etc/passwd",
            "/.git/config",
            "/a//b",
            "/pkg/",
            "/%2e%2e/x",
            "/a\\b",
            "",
        ] {
            assert_eq!(file_path(refused), None, "{refused}");
        }
    }

    #[test]
    fn wasm_is_served_as_wasm() {
        // Browsers compile a module while it downloads only when it comes as application/wasm.
        assert_eq!(media_type("pkg/missive_web_bg.wasm"), "application/wasm");
        assert_eq!(media_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(media_type("LICENSE"), "application/octet-stream");
    }
}
