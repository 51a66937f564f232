//! The blob API over real sockets: limits, quota, who may read and write, resumable uploads,
//! ranges, deletion and expiry.

use missive_proto::api::BlobStatus;
use missive_proto::B64;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

struct Api<'a> {
    h: &'a Harness,
}

impl Api<'_> {
    async fn create(&self, token: &str, group: &str, size: u64) -> (StatusCode, Value) {
        let resp = self
            .h
            .http
            .post(self.h.url("/v1/blobs"))
            .bearer_auth(token)
            .json(&json!({"group_id": group, "size": size}))
            .send()
            .await
            .expect("request");
        (resp.status(), resp.json().await.expect("JSON answer"))
    }

    async fn patch(
        &self,
        token: &str,
        id: &str,
        offset: Option<u64>,
        body: reqwest::Body,
    ) -> (StatusCode, Value) {
        let mut req = self
            .h
            .http
            .patch(self.h.url(&format!("/v1/blobs/{id}")))
            .bearer_auth(token)
            .body(body);
        if let Some(o) = offset {
            req = req.header("upload-offset", o);
        }
        let resp = req.send().await.expect("request");
        (resp.status(), resp.json().await.expect("JSON answer"))
    }

    async fn get(&self, token: &str, id: &str, range: Option<&str>) -> reqwest::Response {
        let mut req = self
            .h
            .http
            .get(self.h.url(&format!("/v1/blobs/{id}")))
            .bearer_auth(token);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send().await.expect("request")
    }

    async fn status(&self, token: &str, id: &str) -> (StatusCode, Value) {
        let resp = self
            .h
            .http
            .get(self.h.url(&format!("/v1/blobs/{id}/status")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        (resp.status(), resp.json().await.expect("JSON answer"))
    }
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("(no code)")
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_limits_permissions_ranges_and_expiry() {
    let h = Harness::with_settings("max_blob_bytes = 200000\nblob_quota_bytes = 300000\n");
    let (alice, bob, _carol, conv) = h.trio("files").await;
    let dave = h.user("dave").await;
    let group = B64::encode(&hex::decode(&conv).expect("hex id"));
    let (a, b, d) = (
        alice.account.token().to_owned(),
        bob.account.token().to_owned(),
        dave.account.token().to_owned(),
    );
    let api = Api { h: &h };

    // Sizes and membership.
    for size in [0, 200_001] {
        let (status, body) = api.create(&a, &group, size).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
    }
    let (status, body) = api.create(&d, &group, 1000).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "dave is no member"
    );
    let (status, body) = api.create(&a, &group, 150_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let blob: BlobStatus = serde_json::from_value(body).expect("status");
    assert_eq!(
        (blob.size, blob.received, blob.complete),
        (150_000, 0, false)
    );
    let id = blob.id.clone();
    let (status, body) = api.create(&a, &group, 150_001).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded")
    );
    // Bob's quota is his own.
    let (status, body) = api.create(&b, &group, 150_001).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bobs: BlobStatus = serde_json::from_value(body).expect("status");

    // Writing: only the uploading device, only at the server's offset.
    let (status, body) = api.patch(&a, &id, None, vec![1u8; 10].into()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    let (status, body) = api.patch(&b, &id, Some(0), vec![1u8; 10].into()).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = api.patch(&a, &id, Some(10), vec![1u8; 10].into()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "offset_mismatch")
    );
    assert_eq!(body["received"], 0);
    let resp = api.get(&b, &id, None).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(code(&body), "blob_incomplete");

    // An upload cut after some bytes keeps what arrived; it resumes from the server's count.
    let data = bytes(150_000, 7);
    let first = data[..70_000].to_vec();
    // The first piece goes out, then after a pause the connection breaks.
    let cut = futures_util::stream::unfold(0, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(first), 1)),
                1 => {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Some((Err(std::io::Error::other("connection lost")), 2))
                }
                _ => None,
            }
        }
    });
    let resp = h
        .http
        .patch(h.url(&format!("/v1/blobs/{id}")))
        .bearer_auth(&a)
        .header("upload-offset", 0)
        .body(reqwest::Body::wrap_stream(cut))
        .send()
        .await;
    assert!(resp.is_err(), "the request was cut");
    let mut received = 0;
    for _ in 0..100 {
        let (status, body) = api.status(&b, &id).await;
        assert_eq!(status, StatusCode::OK, "a member reads the status: {body}");
        received = body["received"].as_u64().expect("received");
        if received > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(received > 0 && received <= 70_000, "kept {received} bytes");
    let rest = data[received as usize..].to_vec();
    let (status, body) = api.patch(&a, &id, Some(received), rest.into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["received"].as_u64(), body["complete"].as_bool()),
        (Some(150_000), Some(true))
    );
    // Bytes beyond the announced size are refused (what fits was kept).
    let (status, body) = api.create(&b, &group, 1000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let small = body["id"].as_str().expect("id").to_owned();
    let (status, body) = api.patch(&b, &small, Some(0), vec![3u8; 1500].into()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let (_, body) = api.status(&b, &small).await;
    assert_eq!(body["received"], 1000);
    // Repeating the last request of a finished upload is harmless.
    let (status, _) = api.patch(&a, &id, Some(150_000), Vec::new().into()).await;
    assert_eq!(status, StatusCode::OK);
    // A crash between the last byte and the completion mark: the next request finishes the job.
    h.db()
        .execute("UPDATE blobs SET complete = 0 WHERE id = ?1", [&id])
        .expect("crash window");
    let (status, body) = api.patch(&a, &id, Some(150_000), Vec::new().into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["complete"], true);

    // Reading: members only; whole or one range.
    let resp = api.get(&b, &id, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), data.as_slice());
    for (range, expect) in [
        ("bytes=10-19", &data[10..20]),
        ("bytes=149990-", &data[149_990..]),
        ("bytes=-5", &data[149_995..]),
        ("bytes=149999-200000", &data[149_999..]),
    ] {
        let resp = api.get(&b, &id, Some(range)).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(resp.headers()["content-range"]
            .to_str()
            .expect("ascii")
            .ends_with("/150000"));
        assert_eq!(
            resp.bytes().await.expect("body").as_ref(),
            expect,
            "{range}"
        );
    }
    for range in ["bytes=150000-", "bytes=abc", "bytes=20-10"] {
        let resp = api.get(&b, &id, Some(range)).await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(resp.headers()["content-range"], "bytes */150000");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(code(&body), "range_not_satisfiable");
    }
    let resp = api.get(&d, &id, None).await;
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "someone else's token learns nothing"
    );
    let resp = api.get(&b, &"0".repeat(32), None).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = api.get(&b, "not-a-blob-id", None).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = h
        .http
        .get(h.url(&format!("/v1/blobs/{id}")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Deleting: the owner only; it frees quota.
    let delete = |token: String| {
        h.http
            .delete(h.url(&format!("/v1/blobs/{id}")))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        delete(b.clone()).await.expect("request").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(a.clone()).await.expect("request").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.status(&a, &id).await.0, StatusCode::NOT_FOUND);
    let (status, body) = api.create(&a, &group, 150_001).await;
    assert_eq!(status, StatusCode::OK, "quota freed: {body}");
    let idle: BlobStatus = serde_json::from_value(body).expect("status");

    // Expiry: unfinished uploads after a day without progress, the rest after 30 days.
    let blobs_dir = h.dir.path().join("server").join("blobs");
    let (status, _) = api
        .patch(&b, &bobs.id, Some(0), vec![9u8; 1000].into())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(blobs_dir.join("partial").join(&bobs.id).exists());
    let now = missive_server::now_secs();
    assert_eq!(h.server.collect_garbage(now).expect("gc"), 0);
    assert_eq!(h.server.collect_garbage(now + 25 * 3600).expect("gc"), 2);
    assert!(
        !blobs_dir.join("partial").join(&bobs.id).exists(),
        "bytes removed"
    );
    assert_eq!(api.status(&b, &bobs.id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.status(&a, &idle.id).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_can_no_longer_fetch_the_groups_files() {
    let h = Harness::new();
    let (mut alice, bob, _carol, conv) = h.trio("files").await;
    let group = B64::encode(&hex::decode(&conv).expect("hex id"));
    let api = Api { h: &h };
    let a = alice.account.token().to_owned();
    let (status, body) = api.create(&a, &group, 10).await;
    assert_eq!(status, StatusCode::OK);
    let id = body["id"].as_str().expect("id").to_owned();
    let (status, _) = api.patch(&a, &id, Some(0), vec![5u8; 10].into()).await;
    assert_eq!(status, StatusCode::OK);
    let b = bob.account.token().to_owned();
    assert_eq!(api.get(&b, &id, None).await.status(), StatusCode::OK);
    alice
        .remove_members(&conv, &[address("bob")])
        .await
        .expect("remove bob");
    assert_eq!(api.get(&b, &id, None).await.status(), StatusCode::NOT_FOUND);
}

/// Under a disappearing-message timer, a file's blob lives on the server no longer than its
/// message does on the devices (plus a minute: the message is accepted after the upload);
/// without a timer it keeps the server's retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_files_blob_expires_with_its_conversations_timer() {
    let h = Harness::new();
    let (mut alice, mut bob, _carol, conv) = h.trio("timed").await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("minutes.txt");
    std::fs::write(&path, b"minutes of the meeting").expect("write");
    let kept = alice.send_file(&conv, &path, None).await.expect("sent");
    alice.set_timer(&conv, Some(300)).await.expect("timer");
    let timed = alice.send_file(&conv, &path, None).await.expect("sent");
    bob.sync().await.expect("sync");
    let blob =
        |m: &missive_core::store::MessageRecord| m.file.as_ref().expect("a file").blob.clone();
    let (kept, timed) = (blob(&kept.message), blob(&timed.message));
    let api = Api { h: &h };
    let b = bob.account.token().to_owned();

    let now = missive_server::now_secs();
    assert_eq!(
        h.server.collect_garbage(now + 300).expect("gc"),
        0,
        "not yet"
    );
    assert_eq!(h.server.collect_garbage(now + 361).expect("gc"), 1);
    assert_eq!(
        api.get(&b, &timed, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.get(&b, &kept, None).await.status(), StatusCode::OK);
}

/// A file whose reads fail from `fail_from` on (a tab closed mid-upload), with a fixed version
/// so that sending it again resumes.
struct Interrupted {
    bytes: Vec<u8>,
    fail_from: std::cell::Cell<Option<u64>>,
}

impl missive_core::client::FileSource for Interrupted {
    fn name(&self) -> String {
        "report.bin".into()
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn version(&self) -> (String, u64) {
        ("test:report.bin".into(), 1)
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, missive_core::CoreError> {
        if self.fail_from.get().is_some_and(|f| offset >= f) {
            return Err(missive_core::CoreError::Io("the page went away".into()));
        }
        let start = offset as usize;
        Ok(self.bytes[start..start + len].to_vec())
    }
}

/// The file message `id` shared, received in pieces into memory.
async fn received(
    client: &mut missive_core::client::Client,
    id: &str,
) -> (missive_proto::app::FileRef, Vec<u8>) {
    let mut bytes = Vec::new();
    let file = client
        .receive_file(
            id,
            missive_core::client::Destination::App,
            |plain| {
                bytes.extend_from_slice(plain);
                Ok(())
            },
            None,
        )
        .await
        .expect("received in pieces");
    (file, bytes)
}

/// The browser's way of moving files, run natively: a file sent in pieces (one plain request
/// each), an upload stopped after its first piece resumed where the server's copy ends, and
/// files received in pieces into memory, byte for byte, whether they were sent in pieces or
/// streamed from disk (and the other way round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_travel_in_pieces_and_resume_where_the_server_stopped() {
    use missive_core::client::PIECE_CHUNKS;
    use missive_core::file::{CHUNK, SEALED_CHUNK};
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("pieces").await;
    let len = PIECE_CHUNKS as usize * CHUNK * 2 + 12_345;
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let source = Interrupted {
        bytes: bytes.clone(),
        fail_from: std::cell::Cell::new(Some((PIECE_CHUNKS as usize * CHUNK) as u64)),
    };
    let stopped = alice.send_file_from(&conv, &source, None).await;
    assert!(
        matches!(stopped, Err(missive_core::CoreError::Io(_))),
        "{stopped:?}"
    );
    source.fail_from.set(None);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let progress = {
        let seen = seen.clone();
        std::sync::Arc::new(move |done: u64, total: u64| {
            seen.lock().expect("lock").push((done, total));
        })
    };
    let sent = alice
        .send_file_from(&conv, &source, Some(progress))
        .await
        .expect("resumed");
    assert_eq!(
        sent.resumed_from,
        PIECE_CHUNKS * SEALED_CHUNK as u64,
        "the first piece was not sent again"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "two pieces were left: {seen:?}");
    assert_eq!(seen.last().map(|(d, t)| d == t), Some(true));

    bob.sync().await.expect("sync");
    let (file, got) = received(&mut bob, &sent.message.id).await;
    assert_eq!(file.name, "report.bin");
    assert!(got == bytes, "the received file differs");

    // Streamed from disk, received in pieces; sent in pieces, written to disk.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("minutes.txt");
    std::fs::write(&path, &bytes[..100_000]).expect("write");
    let streamed = alice.send_file(&conv, &path, None).await.expect("sent");
    bob.sync().await.expect("sync");
    let (_, got) = received(&mut bob, &streamed.message.id).await;
    assert!(got == bytes[..100_000], "the streamed file differs");
    let out = dir.path().join("bob");
    let written = bob
        .download_file(&sent.message.id, &out, None)
        .await
        .expect("downloaded");
    assert!(std::fs::read(written).expect("read") == bytes);

    // Forwarded to another conversation (bob and carol alone): received into memory, sent
    // again under a new key to a blob of that conversation; carol reads the same bytes.
    let elsewhere = bob
        .create_conversation(None, Some(address("carol")), &[address("carol")])
        .await
        .expect("a conversation with carol");
    let forwarded = bob
        .forward(&sent.message.id, &elsewhere)
        .await
        .expect("forwarded");
    assert!(forwarded.forwarded);
    let copy = forwarded.file.as_ref().expect("a file");
    assert_ne!(copy.blob, file.blob, "a blob of the new conversation");
    assert_ne!(copy.secret, file.secret, "under a new key");
    carol.sync().await.expect("sync");
    let (_, got) = received(&mut carol, &forwarded.id).await;
    assert!(got == bytes, "the forwarded file differs");
}
