//! Every endpoint answers bad input with a 4xx and a stable code, and stays healthy.

use missive_proto::api::*;
use missive_proto::cert::DeviceCertificate;
use missive_proto::B64;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;
use missive_server::routes;

/// One request and the answer expected.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Body,
    status: u16,
    code: &'static str,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
    /// A request declaring a body of this many bytes over a raw socket, sending none of it:
    /// the server must refuse it on the declared length alone.
    Oversized(usize),
    /// This many bytes streamed with chunked encoding (no declared length), a first chunk
    /// only: the server must cut it at the route's limit.
    Chunked(usize),
}

/// Sends a raw request head (and optionally the start of a body); returns the status and body
/// of the answer.
async fn raw_request(h: &Harness, head: String, body: Vec<u8>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.server.addr())
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer before it read all of this; that is fine.
    let _ = stream.write_all(&body).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    );
    let _ = read.await.expect("the server answers within 10 s");
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn head(path: &str, token: Option<&str>, length: &str) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         {length}\r\n{auth}Connection: close\r\n\r\n"
    )
}

/// A chunked body of `len` bytes of spaces, as one chunk, then the end.
fn chunked(len: usize) -> Vec<u8> {
    let mut body = format!("{len:x}\r\n").into_bytes();
    body.extend(std::iter::repeat_n(b' ', len));
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    body
}

async fn check(h: &Harness, cases: Vec<Case>) {
    for case in cases {
        let raw = match case.body {
            Body::Oversized(len) => Some((
                head(
                    &case.path,
                    case.token.as_deref(),
                    &format!("Content-Length: {len}"),
                ),
                Vec::new(),
            )),
            Body::Chunked(len) => Some((
                head(
                    &case.path,
                    case.token.as_deref(),
                    "Transfer-Encoding: chunked",
                ),
                chunked(len),
            )),
            _ => None,
        };
        if let Some((head, body)) = raw {
            let (status, text) = raw_request(h, head, body).await;
            assert_eq!(
                status, case.status,
                "{} {}: status (body {text})",
                case.what, case.path
            );
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{}: body is not JSON: {text:?}", case.what));
            assert_eq!(body["code"], case.code, "{}: code in {text}", case.what);
            continue;
        }
        let mut req = h.http.request(case.method.clone(), h.url(&case.path));
        if let Some(t) = &case.token {
            req = req.bearer_auth(t);
        }
        req = match case.body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, bytes) => req.header("content-type", ct).body(bytes),
            Body::Oversized(_) | Body::Chunked(_) => unreachable!("sent above"),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, case.status, "{}: status (body {text})", case.what);
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: body is not JSON: {text:?}", case.what));
        assert_eq!(body["code"], case.code, "{}: code in {text}", case.what);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            case.what
        );
    }
    let health: Value = h
        .http
        .get(h.url("/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("healthz json");
    assert_eq!(health["status"], "ok");
}

fn case(
    what: &'static str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Body,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        token: token.map(str::to_owned),
        body,
        status,
        code,
    }
}

/// Registration body for a fresh identity and device of `address`.
fn registration(address: &str, invite: Option<&str>) -> Value {
    let identity = ed25519_dalek::SigningKey::from_bytes(&rand_bytes());
    let cert = DeviceCertificate::issue(&identity, address, rand_bytes(), [7; 32], 1);
    json!({
        "address": address,
        "invite": invite,
        "identity_key": B64::encode(identity.verifying_key().as_bytes()),
        "device_certificate": B64::encode(&cert.to_bytes()),
    })
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut out);
    out
}

#[tokio::test]
async fn registration_is_refused_outside_policy() {
    let h = Harness::new();
    let used = h.invite(&address("dora")).await;
    let r = h
        .http
        .post(h.url("/v1/register"))
        .json(&registration(&address("dora"), Some(&used)))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::OK);
    let expired = h.invite_expiring(&address("erin"), 1).await;
    let for_frank = h.invite(&address("frank")).await;
    let again = h.invite(&address("dora")).await;
    let mut forged = registration(&address("gus"), Some(&h.invite(&address("gus")).await));
    forged["identity_key"] = json!(B64::encode(&[9u8; 32]));
    let post = |what, body, status, code| {
        case(
            what,
            Method::POST,
            "/v1/register",
            None,
            Body::Json(body),
            status,
            code,
        )
    };
    check(
        &h,
        vec![
            post(
                "wrong domain",
                registration("eve@elsewhere.org", Some("x")),
                403,
                "domain_not_allowed",
            ),
            post(
                "no invite",
                registration(&address("erin"), None),
                403,
                "invite_required",
            ),
            post(
                "reused invite",
                registration(&address("dora"), Some(&used)),
                403,
                "invite_invalid",
            ),
            post(
                "expired invite",
                registration(&address("erin"), Some(&expired)),
                403,
                "invite_invalid",
            ),
            post(
                "invite of another address",
                registration(&address("erin"), Some(&for_frank)),
                403,
                "invite_invalid",
            ),
            post(
                "unknown invite",
                registration(&address("erin"), Some("nope")),
                403,
                "invite_invalid",
            ),
            post(
                "address taken",
                registration(&address("dora"), Some(&again)),
                409,
                "address_taken",
            ),
            post(
                "certificate of another identity",
                forged,
                400,
                "invalid_certificate",
            ),
            post(
                "bad address",
                registration("Not An Address", Some("x")),
                400,
                "malformed_request",
            ),
            post(
                "unknown field",
                json!({"address": "a@example.org", "extra": 1}),
                400,
                "malformed_request",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn every_endpoint_refuses_bad_input_with_a_stable_code() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let token = alice.account.token().to_owned();
    let conv = alice
        .create_conversation(Some("t".into()), None, &[address("bob")])
        .await
        .expect("group");
    let group = B64::encode(&hex::decode(&conv).expect("hex id"));
    drop(bob);

    // Real MLS bytes, cut in half.
    let kp = alice
        .account
        .new_key_packages(1, false)
        .expect("kp")
        .key_packages[0]
        .0
        .clone();
    let (_, create) = alice.account.create_group(None, None).expect("group");
    alice.account.rollback().expect("rollback");
    let (_, send, _) = alice
        .account
        .encrypt(
            &conv,
            missive_proto::app::AppBody::Text {
                text: "x".into(),
                reply_to: None,
            },
        )
        .expect("encrypt");
    let commit = alice
        .account
        .prepare_commit(&conv, &[], &[])
        .expect("commit")
        .request;
    alice.account.commit_refused(&conv).expect("drop commit");
    let half = |b: &[u8]| B64::encode(&b[..b.len() / 2]);

    let t = Some(token.as_str());
    let posts = [
        "/v1/register".to_owned(),
        "/v1/key-packages".into(),
        "/v1/key-packages/claim".into(),
        "/v1/groups".into(),
        format!("/v1/groups/{group}/commits"),
        format!("/v1/groups/{group}/messages"),
        format!("/v1/groups/{group}/call"),
        "/v1/events/ack".into(),
        "/v1/blobs".into(),
    ];
    let mut cases = Vec::new();
    for path in &posts {
        cases.push(case(
            "malformed JSON",
            Method::POST,
            path,
            t,
            Body::Raw("application/json", b"{\"oops".to_vec()),
            400,
            "malformed_request",
        ));
        cases.push(case(
            "wrong JSON shape",
            Method::POST,
            path,
            t,
            Body::Json(json!([1, 2])),
            400,
            "malformed_request",
        ));
        cases.push(case(
            "not JSON",
            Method::POST,
            path,
            t,
            Body::Raw("text/plain", b"hello".to_vec()),
            415,
            "malformed_request",
        ));
        cases.push(case(
            "oversized body",
            Method::POST,
            path,
            t,
            Body::Oversized(routes::COMMIT_BODY + 1),
            413,
            "payload_too_large",
        ));
        if !path.ends_with("/commits") {
            // Streamed without a declared length, past the route's limit (a few MiB).
            cases.push(case(
                "oversized chunked body",
                Method::POST,
                path,
                t,
                Body::Chunked(routes::MLS_BODY + 1),
                413,
                "payload_too_large",
            ));
        }
    }
    for path in posts.iter().skip(1) {
        cases.push(case(
            "no token",
            Method::POST,
            path,
            None,
            Body::Json(json!({})),
            401,
            "unauthorized",
        ));
    }
    let bad_tokens = [
        "junk",
        "0123456789abcdef0123456789abcdef.wrong",
        "0123456789abcdef0123456789abcdef",
    ];
    for bad in bad_tokens {
        cases.push(case(
            "bad token",
            Method::GET,
            "/v1/events",
            Some(bad),
            Body::None,
            401,
            "unauthorized",
        ));
    }
    let forged_token = format!("{}.{}", alice.account.device_id(), B64::encode(&[0u8; 32]));
    cases.extend([
        case("right device, wrong secret", Method::GET, "/v1/events", Some(&forged_token), Body::None, 401, "unauthorized"),
        case("truncated key package", Method::POST, "/v1/key-packages", t, Body::Json(json!({"key_packages": [half(&kp)]})), 400, "invalid_key_package"),
        case("truncated group info", Method::POST, "/v1/groups", t, Body::Json(json!({"group_info": half(&create.group_info.0)})), 400, "malformed_mls"),
        case("truncated message", Method::POST, &format!("/v1/groups/{group}/messages"), t, Body::Json(json!({"message": half(&send.message.0)})), 400, "malformed_mls"),
        case("truncated commit", Method::POST, &format!("/v1/groups/{group}/commits"), t, Body::Json(json!({"commit": half(&commit.commit.0), "group_info": B64::encode(&commit.group_info.0)})), 400, "malformed_mls"),
        case("commit bytes as message", Method::POST, &format!("/v1/groups/{group}/messages"), t, Body::Json(json!({"message": B64::encode(&commit.commit.0)})), 400, "malformed_mls"),
        case("not base64", Method::POST, &format!("/v1/groups/{group}/messages"), t, Body::Json(json!({"message": "!!!"})), 400, "malformed_request"),
        case("bad group id", Method::POST, "/v1/groups/!!/messages", t, Body::Json(json!({"message": "AA"})), 400, "malformed_request"),
        case("unknown group", Method::GET, "/v1/groups/AAAA/group-info", t, Body::None, 404, "not_found"),
        case("claim for nobody", Method::POST, "/v1/key-packages/claim", t, Body::Json(json!({"address": "nobody@example.org"})), 404, "not_found"),
        case("unknown user", Method::GET, "/v1/users/nobody@example.org", t, Body::None, 404, "not_found"),
        case("bad cursor", Method::GET, "/v1/events?after=-1", t, Body::None, 400, "malformed_request"),
        case("websocket without upgrade", Method::GET, "/v1/ws", t, Body::None, 400, "malformed_request"),
        case("unknown route", Method::GET, "/v1/nothing", t, Body::None, 404, "not_found"),
        case("wrong method", Method::DELETE, "/v1/events", t, Body::None, 405, "method_not_allowed"),
        case("bad link channel", Method::GET, "/v1/links/XYZ", t, Body::None, 400, "malformed_request"),
        case("unknown link", Method::GET, &format!("/v1/links/{}/grant", "ab".repeat(32)), None, Body::None, 404, "link_not_found"),
        case("offer on unknown link", Method::PUT, &format!("/v1/links/{}/offer", "ab".repeat(32)), None, Body::Json(json!({"sealed": "AAAA"})), 404, "link_not_found"),
        case("grant without token", Method::POST, &format!("/v1/links/{}/grant", "ab".repeat(32)), None, Body::Json(json!({"device_certificate": "AA", "sealed": "AA"})), 401, "unauthorized"),
        case("recovery without a body", Method::POST, "/v1/recovery/backup", None, Body::Json(json!({})), 400, "malformed_request"),
        case("recovery with a short secret", Method::POST, "/v1/recovery/device", None, Body::Json(json!({"address": "a@b.c", "auth": "AA", "device_certificate": "AA"})), 400, "malformed_request"),
        case("backup without token", Method::PUT, "/v1/recovery", None, Body::Json(json!({"auth": "AA", "backup": "AA"})), 401, "unauthorized"),
        case("revoke a malformed id", Method::DELETE, "/v1/devices/nothex", t, Body::None, 400, "malformed_request"),
        case("revoke an unknown device", Method::DELETE, &format!("/v1/devices/{}", "cd".repeat(16)), t, Body::None, 404, "not_found"),
    ]);
    check(&h, cases).await;
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes() {
    let h = Harness::new();
    let doc: Value = h
        .http
        .get(h.url("/openapi.json"))
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/v1/blobs",
            "/v1/blobs/{id}",
            "/v1/blobs/{id}/status",
            "/v1/calls",
            "/v1/calls/ice-servers",
            "/v1/device-list",
            "/v1/devices/{device_id}",
            "/v1/events",
            "/v1/events/ack",
            "/v1/groups",
            "/v1/groups/{group}/call",
            "/v1/groups/{group}/commits",
            "/v1/groups/{group}/group-info",
            "/v1/groups/{group}/messages",
            "/v1/key-packages",
            "/v1/key-packages/claim",
            "/v1/key-packages/count",
            "/v1/links",
            "/v1/links/{channel}",
            "/v1/links/{channel}/grant",
            "/v1/links/{channel}/history",
            "/v1/links/{channel}/offer",
            "/v1/links/{channel}/packages",
            "/v1/policy",
            "/v1/recovery",
            "/v1/recovery/backup",
            "/v1/recovery/device",
            "/v1/recovery/history",
            "/v1/recovery/history/read",
            "/v1/register",
            "/v1/transparency",
            "/v1/transparency/entries",
            "/v1/transparency/mine",
            "/v1/users/{address}",
            "/v1/ws",
        ]
    );
    // Each documented route answers (not 404) at its documented method.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let concrete = path
                .replace("{group}", "AAAA")
                .replace("{address}", "a@example.org")
                .replace("{id}", &"0".repeat(32));
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let status = h
                .http
                .request(m, h.url(&concrete))
                .send()
                .await
                .expect("request")
                .status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(status.as_u16() < 500, "{method} {path}: {status}");
        }
    }
}

#[tokio::test]
async fn a_key_package_is_never_handed_out_twice() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let count: KeyPackageCount = h.get_json(&alice, "/v1/key-packages/count").await;
    assert_eq!(
        count.count as usize,
        missive_core::account::KEY_PACKAGE_STOCK
    );
    assert!(count.last_resort);
    let claims = (0..count.count + 10).map(|_| {
        h.http
            .post(h.url("/v1/key-packages/claim"))
            .bearer_auth(bob.account.token())
            .json(&json!({"address": address("alice")}))
            .send()
    });
    let mut seen = std::collections::HashMap::<Vec<u8>, usize>::new();
    for resp in futures_util::future::join_all(claims).await {
        let body: ClaimKeyPackagesResponse = resp.expect("claim").json().await.expect("json");
        assert_eq!(body.key_packages.len(), 1, "one per device");
        *seen
            .entry(body.key_packages[0].key_package.0.clone())
            .or_default() += 1;
    }
    let reused: Vec<usize> = seen.values().copied().filter(|n| *n > 1).collect();
    assert_eq!(
        seen.len(),
        count.count as usize + 1,
        "every one-time package once, plus the last resort"
    );
    assert_eq!(reused, vec![10], "only the last-resort package is reused");
}
