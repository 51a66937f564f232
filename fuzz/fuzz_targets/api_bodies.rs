//! Request bodies and headers the server decodes before any authentication: every JSON body
//! type of the API, and the Range header of blob downloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use missive_proto::api::*;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<RegisterRequest>(data);
    let _ = serde_json::from_slice::<UploadKeyPackagesRequest>(data);
    let _ = serde_json::from_slice::<ClaimKeyPackagesRequest>(data);
    let _ = serde_json::from_slice::<CreateGroupRequest>(data);
    let _ = serde_json::from_slice::<CommitRequest>(data);
    let _ = serde_json::from_slice::<SendRequest>(data);
    let _ = serde_json::from_slice::<AckRequest>(data);
    let _ = serde_json::from_slice::<CreateBlobRequest>(data);
    let _ = serde_json::from_slice::<CreateLinkRequest>(data);
    let _ = serde_json::from_slice::<LinkSealed>(data);
    let _ = serde_json::from_slice::<LinkGrantRequest>(data);
    if let Ok(value) = axum::http::HeaderValue::from_bytes(data) {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::RANGE, value);
        for size in [1, 150_000, u64::MAX] {
            if let Ok(Some((start, end))) = missive_server::blob_routes::parse_range(&headers, size)
            {
                assert!(start < end && end <= size, "{start}..{end} of {size}");
            }
        }
    }
});
