//! Call media keys from the conversation's MLS group (`missive_core::call`): members derive the
//! same keys with nothing distributed, each sender under its own key id; a member removed by a
//! commit reads nothing sealed after it; frames of the previous epoch are read for the grace
//! period only; tampered, replayed and foreign frames are refused.

use missive_core::call::{CallKeys, GRACE};
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
    b.rekey(
        bob.account
            .call_epoch(&conv, CALL, CallKeys::secret_len())
            .expect("epoch"),
        removed_at,
    )
    .expect("rekey");
    assert_eq!(a.epoch(), b.epoch());
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
