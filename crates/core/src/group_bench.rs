//! What a membership change costs in a group of N devices (MLS alone, no server), with the
//! settings, ciphersuite (X-Wing) and credential size of our conversations: measured natively
//! by `missive-bench --group N` and in a browser by `cargo xtask web-bench` (the same code). The group is built by one bulk add, as a large conversation created at once
//! is: its parent nodes are blank, the worst case for a commit's update path.
//!
//! Reported, each the median of `RUNS` attempts from the same epoch: adding one device with an
//! update path and without one (the committer's time, the commit's size, which every member
//! downloads, and a member's time to process it), the new device joining from its Welcome, and
//! a removal (which always carries a path).

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use serde_json::json;
use web_time::Instant;

use crate::account::{capabilities, create_config, join_config};
use crate::provider::Provider;
use crate::{CoreError, DEFAULT_CIPHERSUITE};

type Result<T> = std::result::Result<T, CoreError>;

fn fail(what: &str) -> CoreError {
    CoreError::Mls(what.to_owned())
}

const RUNS: usize = 3;
/// The size of our credential (a device certificate), so leaves weigh what ours do.
const CREDENTIAL_BYTES: usize = 148;

/// A device: its own provider (its key packages' private keys), signer and credential.
struct Device {
    provider: Provider,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

impl Device {
    fn new(n: usize) -> Result<Self> {
        Device::sharing(Provider::new()?, n)
    }

    /// A device whose private keys go to `provider`.
    fn sharing(provider: Provider, n: usize) -> Result<Self> {
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519).map_err(CoreError::mls)?;
        let mut id = format!("device-{n}").into_bytes();
        id.resize(CREDENTIAL_BYTES, 0);
        let credential = CredentialWithKey {
            credential: BasicCredential::new(id).into(),
            signature_key: signer.public().into(),
        };
        Ok(Device {
            provider,
            signer,
            credential,
        })
    }

    fn key_package(&self) -> Result<KeyPackage> {
        Ok(KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .build(
                DEFAULT_CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .map_err(CoreError::mls)?
            .key_package()
            .clone())
    }
}

/// An MLS message as it crosses the network, and back.
fn wire(message: &MlsMessageOut) -> Result<(usize, MlsMessageIn)> {
    let bytes = message.tls_serialize_detached().map_err(CoreError::mls)?;
    Ok((
        bytes.len(),
        MlsMessageIn::tls_deserialize_exact(&bytes).map_err(CoreError::mls)?,
    ))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One commit built by `creator` (not merged): its build time, its bytes, and the Welcome.
struct Built {
    ms: f64,
    commit: MlsMessageOut,
    welcome: Option<MlsMessageOut>,
}

fn commit(
    creator: &Device,
    group: &mut MlsGroup,
    add: Vec<KeyPackage>,
    remove: Vec<LeafNodeIndex>,
    path: bool,
) -> Result<Built> {
    let started = Instant::now();
    let bundle = group
        .commit_builder()
        .propose_adds(add)
        .propose_removals(remove)
        .force_self_update(path)
        .load_psks(creator.provider.storage())
        .map_err(CoreError::mls)?
        .use_ratchet_tree_extension(true)
        .build(
            creator.provider.rand(),
            creator.provider.crypto(),
            &creator.signer,
            |_| true,
        )
        .map_err(CoreError::mls)?
        .stage_commit(&creator.provider)
        .map_err(CoreError::mls)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let (commit, welcome, _) = bundle.into_messages();
    Ok(Built {
        ms,
        commit,
        welcome,
    })
}

/// A member's time to process (not merge) a commit.
fn process(member: &Device, group: &mut MlsGroup, commit: &MlsMessageOut) -> Result<f64> {
    let (_, incoming) = wire(commit)?;
    let message = incoming
        .try_into_protocol_message()
        .map_err(|_| fail("not a protocol message"))?;
    let started = Instant::now();
    let processed = group
        .process_message(&member.provider, message)
        .map_err(CoreError::mls)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(_) => Ok(ms),
        _ => Err(fail("not a commit")),
    }
}

/// A device joining from a Welcome: the time, and the group.
fn join(device: &Device, welcome: &MlsMessageOut) -> Result<(f64, MlsGroup)> {
    let (_, incoming) = wire(welcome)?;
    let MlsMessageBodyIn::Welcome(welcome) = incoming.extract() else {
        return Err(fail("not a Welcome"));
    };
    let started = Instant::now();
    let group = StagedWelcome::new_from_welcome(&device.provider, &join_config(), welcome, None)
        .map_err(CoreError::mls)?
        .into_group(&device.provider)
        .map_err(CoreError::mls)?;
    Ok((started.elapsed().as_secs_f64() * 1e3, group))
}

/// Builds a group of `size` devices and measures it; returns the figures as JSON: `build_ms`,
/// `add_with_path`, `add_without_path` (`commit_ms`, `commit_bytes`, `process_ms`,
/// `welcome_bytes`, `join_ms`), `remove` (`commit_ms`, `commit_bytes`, `process_ms`).
pub fn run(size: usize) -> Result<serde_json::Value> {
    if size < 3 {
        return Err(CoreError::Usage("a group of at least 3 devices".into()));
    }
    let started = Instant::now();
    let creator = Device::new(0)?;
    let member = Device::new(1)?;
    // The other members' key packages: their private keys are never needed here (one
    // provider holds them all), but each has a signature key of its own.
    let mut packages = vec![member.key_package()?];
    let mut shared = Some(Provider::new()?);
    for n in 2..size {
        let other = Device::sharing(shared.take().ok_or_else(|| fail("no provider"))?, n)?;
        packages.push(other.key_package()?);
        shared = Some(other.provider);
    }
    let mut group = MlsGroup::new(
        &creator.provider,
        &creator.signer,
        &create_config(),
        creator.credential.clone(),
    )
    .map_err(CoreError::mls)?;
    let bulk = commit(&creator, &mut group, packages, Vec::new(), false)?;
    group
        .merge_pending_commit(&creator.provider)
        .map_err(CoreError::mls)?;
    let bulk_welcome = bulk
        .welcome
        .ok_or_else(|| fail("a bulk add has no Welcome"))?;
    let (_, mut member_group) = join(&member, &bulk_welcome)?;
    let mut report = serde_json::Map::new();
    report.insert("devices".into(), json!(size));
    report.insert(
        "build_ms".into(),
        json!(started.elapsed().as_secs_f64() * 1e3),
    );

    for path in [true, false] {
        let (mut build, mut receive, mut joining) = (Vec::new(), Vec::new(), Vec::new());
        let (mut commit_bytes, mut welcome_bytes) = (0, 0);
        for _ in 0..RUNS {
            let newcomer = Device::new(size)?;
            let built = commit(
                &creator,
                &mut group,
                vec![newcomer.key_package()?],
                Vec::new(),
                path,
            )?;
            build.push(built.ms);
            commit_bytes = wire(&built.commit)?.0;
            receive.push(process(&member, &mut member_group, &built.commit)?);
            let welcome = built.welcome.ok_or_else(|| fail("an add has no Welcome"))?;
            welcome_bytes = wire(&welcome)?.0;
            joining.push(join(&newcomer, &welcome)?.0);
            group
                .clear_pending_commit(creator.provider.storage())
                .map_err(CoreError::mls)?;
        }
        let name = if path {
            "add_with_path"
        } else {
            "add_without_path"
        };
        report.insert(
            name.into(),
            json!({"commit_ms": median(build), "commit_bytes": commit_bytes,
                   "process_ms": median(receive), "welcome_bytes": welcome_bytes,
                   "join_ms": median(joining)}),
        );
    }

    // A removal (of the last device: any but the two measured).
    let last = group
        .members()
        .last()
        .map(|m| m.index)
        .ok_or_else(|| fail("the group has no members"))?;
    let (mut build, mut receive) = (Vec::new(), Vec::new());
    let mut commit_bytes = 0;
    for _ in 0..RUNS {
        let built = commit(&creator, &mut group, Vec::new(), vec![last], false)?;
        build.push(built.ms);
        commit_bytes = wire(&built.commit)?.0;
        receive.push(process(&member, &mut member_group, &built.commit)?);
        group
            .clear_pending_commit(creator.provider.storage())
            .map_err(CoreError::mls)?;
    }
    report.insert(
        "remove".into(),
        json!({"commit_ms": median(build), "commit_bytes": commit_bytes, "process_ms": median(receive)}),
    );
    Ok(serde_json::Value::Object(report))
}

/// The figures of [`run`] as lines for people.
pub fn describe(report: &serde_json::Value) -> Vec<String> {
    let size = report["devices"].as_u64().unwrap_or(0);
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let total = |bytes: &serde_json::Value, members: u64| f(bytes) * members as f64 / 1e6;
    let mut lines = vec![format!(
        "group of {size} devices built in {:.1} s",
        f(&report["build_ms"]) / 1e3
    )];
    for name in ["add_with_path", "add_without_path"] {
        let r = &report[name];
        lines.push(format!(
            "{name}: committer {:.1} ms, commit {} B (every member downloads it: {:.1} MB in \
             all), member processes it in {:.1} ms; the newcomer's Welcome {} B, joins in \
             {:.1} ms",
            f(&r["commit_ms"]),
            r["commit_bytes"],
            total(&r["commit_bytes"], size.saturating_sub(1)),
            f(&r["process_ms"]),
            r["welcome_bytes"],
            f(&r["join_ms"]),
        ));
    }
    let r = &report["remove"];
    lines.push(format!(
        "remove: committer {:.1} ms, commit {} B ({:.1} MB downloaded in all), member \
         processes it in {:.1} ms",
        f(&r["commit_ms"]),
        r["commit_bytes"],
        total(&r["commit_bytes"], size.saturating_sub(2)),
        f(&r["process_ms"]),
    ));
    lines
}
