//! The JSON wire format of the protocol types, pinned: a change here is a protocol change and
//! must be deliberate.

use missive_proto::api::*;
use missive_proto::app::{AppBody, AppMessage, FileRef, KtGossip};
use missive_proto::{ErrorBody, ErrorCode, B64};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

/// Serializes `value`, compares with `expected`, and parses it back to the same JSON.
fn check<T: Serialize + DeserializeOwned>(value: T, expected: serde_json::Value) {
    let actual = serde_json::to_value(&value).expect("serializes");
    assert_eq!(actual, expected);
    let back: T = serde_json::from_value(expected.clone()).expect("parses");
    assert_eq!(serde_json::to_value(&back).expect("serializes"), expected);
}

#[test]
fn api_types() {
    check(
        RegisterRequest {
            address: "alice@example.org".into(),
            invite: Some("abcd-ef01".into()),
            identity_key: B64(vec![1, 2, 3]),
            device_certificate: B64(vec![255]),
        },
        json!({"address": "alice@example.org", "invite": "abcd-ef01", "identity_key": "AQID", "device_certificate": "_w"}),
    );
    check(
        Event {
            id: 7,
            group_id: B64(vec![0xfb, 0xff]),
            seq: 3,
            kind: EventKind::Message,
            sender: "00ff".into(),
            payload: B64(vec![]),
            timestamp: 1_700_000_000_000,
        },
        json!({"id": 7, "group_id": "-_8", "seq": 3, "kind": "message", "sender": "00ff", "payload": "", "timestamp": 1_700_000_000_000u64}),
    );
    check(
        PushFrame::Events { events: vec![] },
        json!({"type": "events", "events": []}),
    );
    check(
        CommitRequest {
            commit: B64(vec![1]),
            welcome: None,
            group_info: B64(vec![2]),
        },
        json!({"commit": "AQ", "welcome": null, "group_info": "Ag"}),
    );
    check(
        KeyPackageCount {
            count: 50,
            last_resort: true,
        },
        json!({"count": 50, "last_resort": true}),
    );
}

#[test]
fn errors() {
    check(
        ErrorBody {
            code: ErrorCode::StaleEpoch,
            message: "the group is at epoch 4".into(),
            current_epoch: Some(4),
            received: None,
        },
        json!({"code": "stale_epoch", "message": "the group is at epoch 4", "current_epoch": 4}),
    );
    check(
        ErrorBody {
            code: ErrorCode::PayloadTooLarge,
            message: "too large".into(),
            current_epoch: None,
            received: None,
        },
        json!({"code": "payload_too_large", "message": "too large"}),
    );
    check(
        ErrorBody {
            code: ErrorCode::OffsetMismatch,
            message: "resume at 65552".into(),
            current_epoch: None,
            received: Some(65552),
        },
        json!({"code": "offset_mismatch", "message": "resume at 65552", "received": 65552}),
    );
    // The serde name and `as_str` agree for every code.
    for code in [
        ErrorCode::MalformedRequest,
        ErrorCode::PayloadTooLarge,
        ErrorCode::MalformedMls,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::DomainNotAllowed,
        ErrorCode::InviteRequired,
        ErrorCode::InviteInvalid,
        ErrorCode::AddressTaken,
        ErrorCode::InvalidCertificate,
        ErrorCode::InvalidKeyPackage,
        ErrorCode::NotFound,
        ErrorCode::GroupExists,
        ErrorCode::StaleEpoch,
        ErrorCode::InvalidCommit,
        ErrorCode::NoKeyPackage,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::OffsetMismatch,
        ErrorCode::BlobIncomplete,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::LinkNotFound,
        ErrorCode::LinkOutOfOrder,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InvalidDeviceList,
        ErrorCode::StaleDeviceList,
        ErrorCode::DeviceListed,
        ErrorCode::RecoveryRefused,
        ErrorCode::RecoveryKeyExists,
        ErrorCode::CallInProgress,
        ErrorCode::NotInCall,
        ErrorCode::Internal,
        ErrorCode::Unknown,
    ] {
        assert_eq!(
            serde_json::to_value(code).expect("code"),
            json!(code.as_str())
        );
    }
}

#[test]
fn application_payload() {
    check(
        AppMessage {
            id: "0a".into(),
            sent_at: 5,
            prev: Vec::new(),
            kt: None,
            forwarded: false,
            body: AppBody::Text {
                text: "bonjour".into(),
                reply_to: None,
            },
        },
        json!({"id": "0a", "sent_at": 5, "body": {"type": "text", "text": "bonjour"}}),
    );
    check(
        AppMessage {
            id: "0c".into(),
            sent_at: 6,
            prev: Vec::new(),
            kt: None,
            forwarded: false,
            body: AppBody::Text {
                text: "oui".into(),
                reply_to: Some("0a".into()),
            },
        },
        json!({"id": "0c", "sent_at": 6, "body": {"type": "text", "text": "oui", "reply_to": "0a"}}),
    );
    check(
        AppMessage {
            id: "0b".into(),
            sent_at: 6,
            prev: vec!["0a".into(), "09".into()],
            kt: Some(KtGossip {
                domain: "gouv.example".into(),
                size: 12,
                root: B64(vec![1; 4]),
                signature: B64(vec![2; 4]),
            }),
            forwarded: false,
            body: AppBody::Meta {
                name: Some("Cabinet".into()),
                dm: false,
                timer: None,
                label: None,
            },
        },
        json!({"id": "0b", "sent_at": 6, "prev": ["0a", "09"],
            "kt": {"domain": "gouv.example", "size": 12, "root": "AQEBAQ", "signature": "AgICAg"},
            "body": {"type": "meta", "name": "Cabinet", "dm": false}}),
    );
    check(
        AppMessage {
            id: "0b".into(),
            sent_at: 1,
            prev: Vec::new(),
            kt: None,
            forwarded: false,
            body: AppBody::File {
                file: FileRef {
                    blob: "5e".into(),
                    secret: B64(vec![7; 4]),
                    blake3: "ab".into(),
                    size: 300_000,
                    name: "minutes.pdf".into(),
                    media_type: "application/pdf".into(),
                },
            },
        },
        json!({"id": "0b", "sent_at": 1, "body": {"type": "file", "file": {
            "blob": "5e", "secret": "BwcHBw", "blake3": "ab", "size": 300000,
            "name": "minutes.pdf", "media_type": "application/pdf"}}}),
    );
}

/// The kinds that change a conversation: how the wire spells each.
#[test]
fn changes_on_the_wire() {
    let body = |body: AppBody| AppMessage {
        id: "0e".into(),
        sent_at: 9,
        prev: Vec::new(),
        kt: None,
        forwarded: false,
        body,
    };
    let wire = |b: serde_json::Value| json!({"id": "0e", "sent_at": 9, "body": b});
    check(
        body(AppBody::Edit {
            target: "0a".into(),
            text: "bonsoir".into(),
        }),
        wire(json!({"type": "edit", "target": "0a", "text": "bonsoir"})),
    );
    check(
        body(AppBody::Delete {
            target: "0a".into(),
        }),
        wire(json!({"type": "delete", "target": "0a"})),
    );
    check(
        body(AppBody::React {
            target: "0a".into(),
            emoji: "👍".into(),
            remove: false,
        }),
        wire(json!({"type": "react", "target": "0a", "emoji": "👍"})),
    );
    check(
        body(AppBody::React {
            target: "0a".into(),
            emoji: "👍".into(),
            remove: true,
        }),
        wire(json!({"type": "react", "target": "0a", "emoji": "👍", "remove": true})),
    );
    check(
        body(AppBody::Receipt {
            delivered: 12,
            read: 0,
        }),
        wire(json!({"type": "receipt", "delivered": 12})),
    );
    check(
        body(AppBody::Timer { seconds: Some(300) }),
        wire(json!({"type": "timer", "seconds": 300})),
    );
    check(
        body(AppBody::Timer { seconds: None }),
        wire(json!({"type": "timer", "seconds": null})),
    );
    check(
        body(AppBody::Meta {
            name: None,
            dm: true,
            timer: Some(3600),
            label: None,
        }),
        wire(json!({"type": "meta", "name": null, "dm": true, "timer": 3600})),
    );
    check(
        body(AppBody::Label {
            label: Some(missive_proto::api::Label {
                name: "Diffusion restreinte".into(),
                colour: "#b3261e".into(),
                level: 2,
                max_disappear: Some(604_800),
                no_forward: true,
                downloads: missive_proto::api::Downloads::InApp,
                domains: vec!["interieur.gouv.fr".into()],
            }),
        }),
        wire(
            json!({"type": "label", "label": {"name": "Diffusion restreinte",
            "colour": "#b3261e", "level": 2, "max_disappear": 604800, "no_forward": true,
            "downloads": "in_app", "domains": ["interieur.gouv.fr"]}}),
        ),
    );
    check(body(AppBody::Typing), wire(json!({"type": "typing"})));
    // A rule of a later version is read as the strictest, not refused.
    let later: missive_proto::api::Label = serde_json::from_value(json!({"name": "X",
        "colour": "#000000", "level": 1, "downloads": "watermarked"}))
    .expect("reads");
    assert_eq!(later.downloads, missive_proto::api::Downloads::Unknown);
    assert!(!later.downloads.to_disk());
    // A known kind stays strict: an edit without its target is refused.
    assert!(
        serde_json::from_value::<AppMessage>(wire(json!({"type": "edit", "text": "x"}))).is_err()
    );
}

#[test]
fn base64_is_strict() {
    for bad in ["\"AQ==\"", "\"A+/\"", "\"!\"", "3"] {
        assert!(serde_json::from_str::<B64>(bad).is_err(), "{bad}");
    }
}

/// Values a later version may send: today's types read them instead of failing.
#[test]
fn values_added_later_are_read_not_refused() {
    // A message kind of tomorrow: kept whole, and written back exactly as received.
    let wire = json!({"id": "0c", "sent_at": 7, "body": {"type": "poll", "question": "Lunch?",
        "options": ["12:00", "13:00"]}});
    let message: AppMessage = serde_json::from_value(wire.clone()).expect("an unknown kind reads");
    assert_eq!(message.body.kind(), "poll");
    assert!(matches!(&message.body, AppBody::Unknown { body, .. } if body["question"] == "Lunch?"));
    assert_eq!(serde_json::to_value(&message).expect("writes"), wire);
    // A known kind stays strict: a malformed text is refused, not taken for an unknown kind.
    assert!(serde_json::from_value::<AppMessage>(
        json!({"id": "0d", "sent_at": 8, "body": {"type": "text", "txt": "typo"}})
    )
    .is_err());
    assert!(serde_json::from_value::<AppMessage>(
        json!({"id": "0d", "sent_at": 8, "body": {"text": "no type"}})
    )
    .is_err());

    let frame: PushFrame = serde_json::from_value(json!({"type": "presence", "online": ["a"]}))
        .expect("an unknown push frame reads");
    assert!(matches!(frame, PushFrame::Unknown));
    let kind: EventKind = serde_json::from_value(json!("reaction")).expect("an unknown event kind");
    assert_eq!(kind, EventKind::Unknown);
    let error: ErrorBody = serde_json::from_value(
        json!({"code": "account_suspended", "message": "ask your administrator"}),
    )
    .expect("an unknown error code reads");
    assert_eq!(error.code, ErrorCode::Unknown);
    assert_eq!(error.message, "ask your administrator");
}
