//! Commits against a real group: the server's commit validation (`GroupState::apply_commit`)
//! run on a group that two real accounts built, with inputs that are either fresh bytes or the
//! genuine commit and GroupInfo with bytes overwritten. The genuine pair must always apply; no
//! input may panic, and an accepted input must have the genuine commit's effect.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use missive_core::account::Account;
use missive_core::sqlite::SqliteAccountStore;
use missive_proto::api::{ClaimedKeyPackage, DeviceInfo, RegisterResponse, UserResponse};
use missive_proto::B64;
use missive_server::groups::GroupState;

/// A group created by alice at epoch 0 (as the server stores it) and alice's genuine commit
/// adding bob's device.
struct Fixture {
    group_id: Vec<u8>,
    state: Vec<u8>,
    sender: String,
    commit: Vec<u8>,
    group_info: Vec<u8>,
    members_after: Vec<String>,
}

fn account(dir: &std::path::Path, name: &str) -> Account {
    let address = format!("{name}@fuzz.example");
    let store = SqliteAccountStore::open(&dir.join(name).join("account.db")).expect("store");
    let (mut account, request) =
        Account::create(Box::new(store), &address, "http://127.0.0.1:9", None).expect("create");
    let device_id = account.device_id();
    account
        .finish_registration(&RegisterResponse {
            address,
            device_id: device_id.clone(),
            token: format!("{device_id}.fuzz"),
        })
        .expect("register");
    drop(request);
    account
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("missive-fuzz-commit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut alice = account(&dir, "alice");
    let mut bob = account(&dir, "bob");
    let upload = bob.new_key_packages(1, false).expect("key packages");
    let bob_user = UserResponse {
        address: bob.address().to_owned(),
        identity_key: B64(bob.identity_key().to_vec()),
        devices: vec![DeviceInfo {
            device_id: bob.device_id(),
            certificate: B64(bob.store().setting("certificate").expect("cert").expect("cert")),
        }],
        device_list: Some(B64(bob
            .next_device_list(&[bob.listed_self()], &[], &[])
            .expect("bob's device list"))),
        transparency: None,
    };
    alice.pin(&bob_user).expect("pin bob");
    let (claimed, alerts) = alice
        .verify_claimed(
            bob.address(),
            &[ClaimedKeyPackage {
                device_id: bob.device_id(),
                key_package: upload.key_packages[0].clone(),
            }],
            true,
        )
        .expect("bob's package");
    assert!(alerts.is_empty(), "{alerts:?}");
    let (conversation, create) = alice.create_group(None, None).expect("group");
    alice.save().expect("save");
    let (state, group_id, _) = GroupState::create(&create.group_info.0).expect("server state");
    let prepared = alice
        .prepare_commit(&conversation, &claimed, &[])
        .expect("commit");
    let _ = std::fs::remove_dir_all(&dir);
    let fixture = Fixture {
        group_id,
        state: state.to_bytes().expect("state bytes"),
        sender: alice.device_id(),
        commit: prepared.request.commit.0,
        group_info: prepared.request.group_info.0,
        members_after: Vec::new(),
    };
    let mut genuine = GroupState::load(&fixture.group_id, &fixture.state).expect("load");
    genuine
        .apply_commit(&fixture.commit, &fixture.sender, &fixture.group_info)
        .expect("the genuine commit applies");
    Fixture {
        members_after: genuine.member_devices().expect("members"),
        ..fixture
    }
});

/// The genuine bytes with `edits` applied: each (position, byte) pair overwrites one byte.
fn overwrite(genuine: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = genuine.to_vec();
    for pair in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % out.len();
        out[at] = pair[2];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (commit, group_info) = match mode % 3 {
        0 => (rest.to_vec(), f.group_info.clone()),
        1 => (overwrite(&f.commit, rest), f.group_info.clone()),
        _ => (f.commit.clone(), overwrite(&f.group_info, rest)),
    };
    let mut state = GroupState::load(&f.group_id, &f.state).expect("load");
    if state.apply_commit(&commit, &f.sender, &group_info).is_ok() {
        // Whatever bytes got through must have done exactly what the genuine commit does.
        assert_eq!(state.epoch(), 1, "an accepted commit moved to another epoch");
        assert_eq!(
            state.member_devices().expect("members"),
            f.members_after,
            "an accepted commit changed the group otherwise than the genuine one"
        );
    }
});
