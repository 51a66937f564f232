//! Call media keys from the conversation's MLS group (`missive_core::call`): members derive the
//! same keys with nothing distributed, each sender under its own key id; a member removed by a
//! commit reads nothing sealed after it; frames of the previous epoch are read for the grace
//! period only; tampered, replayed and foreign frames are refused.

use missive_core::call::{CallKeys, Media, GRACE};
use missive_core::AlertCode;
use std::time::{Duration, Instant};

use crate::support::*;

const CALL: &[u8] = b"call 1";

fn keys(client: &mut missive_core::client::Client, conv: &str, call: &[u8]) -> CallKeys {
    let epoch = client
        .account
        .call_epoch(conv, call, CallKeys::secret_len())
        .expect("call epoch");
    CallKeys::new(epoch).expect("call keys")
}

#[tokio::test]
async fn call_keys_come_from_the_group_and_change_with_its_members() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("call").await;
    let now = Instant::now();
    let mut a = keys(&mut alice, &conv, CALL);
    let mut b = keys(&mut bob, &conv, CALL);
    let mut c = keys(&mut carol, &conv, CALL);

    // Each reads the others, and knows who sent what.
    let from_alice = a.seal(b"alice's audio").expect("seal");
    for reader in [&mut b, &mut c] {
        let opened = reader.open(&from_alice, now).expect("open");
        assert_eq!(opened.payload, b"alice's audio");
        assert_eq!(opened.sender.address, address("alice"));
    }
    let from_bob = b.seal(b"bob's audio").expect("seal");
    assert_eq!(
        c.open(&from_bob, now).expect("open").sender.address,
        address("bob")
    );
    // The ciphertext does not hold the audio, and a key id is no one's secret.
    assert!(!from_alice.windows(5).any(|w| w == b"alice"));

    // Replayed, tampered with, or of another call: refused.
    assert_refused(b.open(&from_alice, now), AlertCode::RejectedMessage);
    let mut tampered = a.seal(b"genuine").expect("seal");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_refused(b.open(&tampered, now), AlertCode::RejectedMessage);
    let mut other_call = keys(&mut alice, &conv, b"call 2");
    assert_refused(
        b.open(&other_call.seal(b"elsewhere").expect("seal"), now),
        AlertCode::RejectedMessage,
    );

    // A video (VP8) frame keeps its payload header in clear for the depacketizers, 10 bytes
    // of a keyframe and 3 of an interframe; the picture is sealed, and the clear bytes are
    // authenticated with it.
    let keyframe = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00 a red square".to_vec();
    let interframe = b"\x31\x01\x00 the square moves".to_vec();
    for (frame, clear) in [(&keyframe, 10), (&interframe, 3)] {
        let sealed = a.seal_media(Media::Video, frame).expect("seal");
        assert_eq!(sealed[..clear], frame[..clear]);
        assert!(!sealed.windows(6).any(|w| w == b"square"));
        for flipped in [1, clear + 2] {
            let mut tampered = sealed.clone();
            tampered[flipped] ^= 1;
            assert_refused(
                c.open_media(Media::Video, &tampered, now),
                AlertCode::RejectedMessage,
            );
        }
        let opened = c.open_media(Media::Video, &sealed, now).expect("open");
        assert_eq!(&opened.payload, frame);
    }
    // A frame sealed whole is no video frame: opening it as one is refused, not mangled.
    let whole = a.seal(&keyframe).expect("seal");
    assert_refused(
        c.open_media(Media::Video, &whole, now),
        AlertCode::RejectedMessage,
    );

    // Carol is removed: a new epoch, new keys.
    let before_removal = a.seal(b"sent before the removal").expect("seal");
    let delayed = a.seal(b"delayed on the network").expect("seal");
    alice
        .remove_members(&conv, &[address("carol")])
        .await
        .expect("remove");
    bob.sync().await.expect("sync");
    carol.sync().await.expect("sync");
    let removed_at = Instant::now();
    a.rekey(
        alice
            .account
            .call_epoch(&conv, CALL, CallKeys::secret_len())
            .expect("epoch"),
        removed_at,
    )
    .expect("rekey");
    // Before bob learns of the commit, alice's new frames are ahead of him (he keeps them for
    // after his rekey); frames of his own epoch are not.
    let early = a.seal(b"sealed before bob rekeyed").expect("seal");
    assert!(b.is_ahead(Media::Audio, &early));
    assert!(!b.is_ahead(Media::Audio, &before_removal));
    b.rekey(
        bob.account
            .call_epoch(&conv, CALL, CallKeys::secret_len())
            .expect("epoch"),
        removed_at,
    )
    .expect("rekey");
    assert_eq!(a.epoch(), b.epoch());
    assert_eq!(
        b.open(&early, removed_at)
            .expect("heard after the rekey")
            .payload,
        b"sealed before bob rekeyed"
    );
    let after = a.seal(b"after the removal").expect("seal");
    assert_eq!(
        b.open(&after, removed_at).expect("open").payload,
        b"after the removal"
    );
    // Carol holds the old epoch's keys, and nothing more: she reads nothing new, and cannot
    // derive the new epoch's secret.
    assert_refused(c.open(&after, removed_at), AlertCode::RejectedMessage);
    assert!(carol
        .account
        .call_epoch(&conv, CALL, CallKeys::secret_len())
        .is_err());

    // A frame of the previous epoch still reads within the grace, not after it.
    assert_eq!(
        b.open(&before_removal, removed_at + Duration::from_secs(1))
            .expect("within the grace")
            .payload,
        b"sent before the removal"
    );
    assert_refused(
        b.open(&delayed, removed_at + GRACE + Duration::from_secs(1)),
        AlertCode::RejectedMessage,
    );
}

/// A real WebRTC offer (one track sent, two received), as a participant makes it.
fn offer() -> String {
    offer_with_video(0)
}

/// A real WebRTC offer: one audio track sent, two received, and with `video` receiving slots,
/// one video track sent and those, every codec str0m knows offered for them (as a browser
/// offers all of its own).
fn offer_with_video(video: usize) -> String {
    use str0m::media::{Direction, MediaKind};
    let builder = str0m::Rtc::builder()
        .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()));
    let builder = if video == 0 {
        builder.clear_codecs().enable_opus(true, false)
    } else {
        builder
    };
    let mut rtc = builder.build(Instant::now());
    let candidate =
        str0m::Candidate::host("127.0.0.1:40000".parse().expect("addr"), "udp").expect("candidate");
    rtc.add_local_candidate(candidate);
    let mut changes = rtc.sdp_api();
    changes.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    if video > 0 {
        changes.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    }
    for _ in 0..video {
        changes.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    }
    changes.apply().expect("offer").0.to_sdp_string()
}

/// Waits (5 s at most) for the push channel to say that calls changed: their conversations.
async fn calls_changed(push: &mut missive_core::client::PushConnection) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            push.next_batch().await.expect("push").expect("open");
            let changed = push.take_calls_changed();
            if !changed.is_empty() {
                return changed;
            }
        }
    })
    .await
    .expect("a call change pushed within 5 s")
}

fn code(e: missive_core::CoreError) -> Option<missive_proto::ErrorCode> {
    e.server_code()
}

#[tokio::test]
async fn only_members_join_a_call_and_a_removed_member_is_cut_off() {
    use missive_proto::ErrorCode;
    let h = Harness::new();
    let (mut alice, bob, carol, conv) = h.trio("call").await;
    let dave = h.user("dave").await;
    let call = [7u8; 16];
    // Bob and Carol listen: every join and leave is pushed to the members at once (each
    // change checked as it happens, so each check reads the frame of that change).
    let mut bob_push = bob.connect_push().await.expect("push");
    let mut carol_push = carol.connect_push().await.expect("push");

    // Someone who is not a member is refused, however good the offer.
    let refused = dave
        .transport()
        .join_call(&conv, &call, offer())
        .await
        .expect_err("dave is no member");
    assert_eq!(code(refused), Some(ErrorCode::Forbidden));
    // Members' malformed requests: a clear error, nothing started.
    let e = bob
        .transport()
        .join_call(&conv, &call, "v=0 not an offer".into())
        .await
        .expect_err("not SDP");
    assert_eq!(code(e), Some(ErrorCode::MalformedRequest));
    let e = bob
        .transport()
        .join_call(&conv, &[1, 2, 3], offer())
        .await
        .expect_err("short id");
    assert_eq!(code(e), Some(ErrorCode::MalformedRequest));
    assert!(bob.transport().calls().await.expect("calls").is_empty());

    // Alice starts the call; the members see it, dave does not.
    let answer = alice
        .transport()
        .join_call(&conv, &call, offer())
        .await
        .expect("alice joins");
    assert!(answer.answer.contains("a=candidate"), "the relay's address");
    assert_eq!(calls_changed(&mut bob_push).await, [conv.as_str()]);
    assert_eq!(calls_changed(&mut carol_push).await, [conv.as_str()]);
    let listed = bob.transport().calls().await.expect("calls");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].conversation, conv);
    assert_eq!(listed[0].call_id, call);
    assert_eq!(
        listed[0].devices,
        vec![alice.account.device_id().to_owned()]
    );
    assert!(dave.transport().calls().await.expect("calls").is_empty());
    // Another call id while this call goes on: join this one instead.
    let e = bob
        .transport()
        .join_call(&conv, &[8u8; 16], offer())
        .await
        .expect_err("another call");
    assert_eq!(code(e), Some(ErrorCode::CallInProgress));

    // Carol joins with her camera and room to see eight others: an offer larger than most
    // requests (a browser's, with every codec it has, is about 30 KB), answered with VP8.
    let with_video = offer_with_video(8);
    assert!(with_video.len() > 16 * 1024, "{} bytes", with_video.len());
    let answer = carol
        .transport()
        .join_call(&conv, &call, with_video)
        .await
        .expect("carol joins");
    assert_eq!(calls_changed(&mut bob_push).await, [conv.as_str()]);
    assert_eq!(calls_changed(&mut carol_push).await, [conv.as_str()]);
    let video_lines = answer.answer.matches("m=video").count();
    assert_eq!(video_lines, 9, "{}", answer.answer);
    assert!(answer.answer.contains("VP8/90000"), "{}", answer.answer);
    // Then she is removed from the group: the relay lets her go at once.
    let devices = |h: &Harness| -> Vec<String> {
        h.server
            .sfu()
            .rooms()
            .values()
            .flat_map(|r| r.participants.iter().map(|(_, d)| d.clone()))
            .collect()
    };
    assert!(devices(&h).contains(&carol.account.device_id().to_owned()));
    alice
        .remove_members(&conv, &[address("carol")])
        .await
        .expect("remove");
    assert_eq!(devices(&h), vec![alice.account.device_id().to_owned()]);
    // Carol, no longer a member, is still told (her app ends the call), as is Bob.
    assert_eq!(calls_changed(&mut carol_push).await, [conv.as_str()]);
    assert_eq!(calls_changed(&mut bob_push).await, [conv.as_str()]);
    let e = carol
        .transport()
        .join_call(&conv, &call, offer())
        .await
        .expect_err("no longer a member");
    assert_eq!(code(e), Some(ErrorCode::Forbidden));

    // Leaving: once; the last one out ends the call, and is told so (only it).
    bob.transport()
        .join_call(&conv, &call, offer())
        .await
        .expect("bob joins");
    assert!(!bob.transport().leave_call(&conv).await.expect("bob leaves"));
    assert!(alice.transport().leave_call(&conv).await.expect("leave"));
    let e = alice
        .transport()
        .leave_call(&conv)
        .await
        .expect_err("left already");
    assert_eq!(code(e), Some(ErrorCode::NotInCall));
    assert!(bob.transport().calls().await.expect("calls").is_empty());

    // Two leaving at the same moment: exactly one of them is told it was the last.
    for client in [&alice, &bob] {
        client
            .transport()
            .join_call(&conv, &[9u8; 16], offer())
            .await
            .expect("joins");
    }
    let (a, b) = (alice.transport(), bob.transport());
    let (a, b) = tokio::join!(a.leave_call(&conv), b.leave_call(&conv));
    let lasts = [a.expect("alice leaves"), b.expect("bob leaves")];
    assert_eq!(lasts.iter().filter(|last| **last).count(), 1, "{lasts:?}");
}

#[tokio::test]
async fn each_device_gets_turn_credentials_of_its_own_that_expire() {
    let h = Harness::with_settings(
        "turn_urls = [\"turn:127.0.0.1:3478?transport=udp\", \"turns:turn.call.test:443?transport=tcp\"]\n\
         turn_secret = \"north-wind\"\nturn_ttl_hours = 2\n",
    );
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let now = missive_core::now_ms() / 1000;
    let mut seen = Vec::new();
    for client in [&alice, &bob] {
        let servers = client.transport().ice_servers().await.expect("ice servers");
        assert_eq!(servers.len(), 1);
        let turn = &servers[0];
        assert_eq!(turn.urls.len(), 2);
        let username = turn.username.clone().expect("username");
        let (expiry, device) = username.split_once(':').expect("EXPIRY:DEVICE");
        assert_eq!(device, client.account.device_id());
        let expiry: u64 = expiry.parse().expect("seconds");
        assert!(expiry.abs_diff(now + 7200) < 60, "{expiry} vs {now}");
        seen.push(turn.credential.clone().expect("credential"));
    }
    assert_ne!(seen[0], seen[1]);

    // No TURN server named: none handed out.
    let plain = Harness::new();
    let carol = plain.user("carol").await;
    assert!(carol
        .transport()
        .ice_servers()
        .await
        .expect("ice servers")
        .is_empty());
}

/// An offer as a browser makes it: several codecs, header extensions, one sending and two
/// receiving audio sections bundled.
const BROWSER_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS s1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Qx7e\r\na=ice-pwd:7m2ENg0s3Nh2Cr1nT8rE6kA5\r\n\
a=ice-options:trickle\r\na=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendonly\r\na=msid:s1 t1\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\na=ssrc:1001 cname:abcd\r\na=ssrc:1001 msid:s1 t1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Qx7e\r\na=ice-pwd:7m2ENg0s3Nh2Cr1nT8rE6kA5\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\na=mid:1\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=recvonly\r\n\
a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:Qx7e\r\na=ice-pwd:7m2ENg0s3Nh2Cr1nT8rE6kA5\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\na=mid:2\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=recvonly\r\n\
a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

/// `text` changed at random: lines dropped, repeated or swapped, numbers made huge or
/// negative, characters replaced, or the whole cut short.
fn mutate(text: &str) -> String {
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    for _ in 0..1 + rand::random::<u8>() % 4 {
        if lines.is_empty() {
            break;
        }
        let at = rand::random::<usize>() % lines.len();
        match rand::random::<u8>() % 7 {
            0 => {
                lines.remove(at);
            }
            1 => lines.insert(at, lines[at].clone()),
            2 => {
                let other = rand::random::<usize>() % lines.len();
                lines.swap(at, other);
            }
            3 => {
                let huge = ["99999999999999999999", "-1", "4294967296", "0", ""];
                let with = huge[rand::random::<usize>() % huge.len()];
                lines[at] = lines[at]
                    .split(' ')
                    .map(|w| if w.parse::<i64>().is_ok() { with } else { w })
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            4 => {
                let mut chars: Vec<char> = lines[at].chars().collect();
                if !chars.is_empty() {
                    let i = rand::random::<usize>() % chars.len();
                    chars[i] = [':', ' ', '=', '/', '\u{0}', 'é', '9'][rand::random::<usize>() % 7];
                }
                lines[at] = chars.into_iter().collect();
            }
            5 => lines[at] = lines[at].repeat(20),
            _ => {
                let keep = rand::random::<usize>() % text.len();
                return text.chars().take(keep).collect();
            }
        }
    }
    lines.join("\r\n")
}

/// The relay's thread is still running (it would be gone after a panic).
fn relay_alive() -> bool {
    std::fs::read_dir("/proc/self/task")
        .expect("threads")
        .filter_map(Result::ok)
        .any(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "missive-sfu")
        })
}

#[tokio::test]
async fn offers_and_packets_bent_out_of_shape_get_clear_refusals_and_the_relay_stays_up() {
    use missive_proto::ErrorCode;
    let h = Harness::new();
    let (alice, _bob, _carol, conv) = h.trio("call").await;
    let call = [5u8; 16];
    let transport = alice.transport();
    let good = [offer(), BROWSER_OFFER.to_owned()];
    for offer in &good {
        transport
            .join_call(&conv, &call, offer.clone())
            .await
            .expect("a well-formed offer is answered");
    }
    let (mut answered, mut refused) = (0, 0);
    for round in 0..300 {
        let bent = mutate(&good[round % 2]);
        match transport.join_call(&conv, &call, bent.clone()).await {
            Ok(_) => answered += 1,
            Err(e) => {
                // Too big for the route (a line repeated 200 times), or not an offer it takes.
                let shown = e.to_string();
                let code = code(e);
                assert!(
                    matches!(
                        code,
                        Some(ErrorCode::MalformedRequest | ErrorCode::PayloadTooLarge)
                    ),
                    "{shown} for {bent:?}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("bent offers: {refused} refused, {answered} answered");
    assert!(refused > 50, "{refused} refused, {answered} answered");
    // Datagrams that are no STUN, DTLS or SRTP, or broken ones, at the relay's port.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    for _ in 0..2000 {
        let mut packet: Vec<u8> = (0..rand::random::<usize>() % 1200)
            .map(|_| rand::random())
            .collect();
        // Some start as STUN (a binding request's type and magic cookie) or DTLS would.
        match rand::random::<u8>() % 3 {
            0 if packet.len() >= 8 => {
                packet[..8].copy_from_slice(&[0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42])
            }
            1 if packet.len() >= 3 => packet[..3].copy_from_slice(&[22, 254, 253]),
            _ => {}
        }
        socket
            .send_to(&packet, h.server.sfu().addr())
            .expect("send");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(relay_alive(), "the relay's thread is gone");
    transport
        .join_call(&conv, &call, offer())
        .await
        .expect("the relay still answers");
}
