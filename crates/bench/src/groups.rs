//! `--group N`: what a membership change costs in a group of N devices, in this process (MLS
//! alone, no server), with the settings, ciphersuite (X-Wing) and credential size of our
//! conversations. The group is built by one bulk add, as a large conversation created at once
//! is: its parent nodes are blank, the worst case for a commit's update path.
//!
//! Reported, each the median of `RUNS` attempts from the same epoch: adding one device with an
//! update path and without one (the committer's time, the commit's size, which every member
//! downloads, and a member's time to process it), the new device joining from its Welcome, and
//! a removal (which always carries a path).

use std::time::Instant;

use anyhow::{anyhow, Context};
use missive_core::account::{capabilities, create_config, join_config};
use missive_core::provider::Provider;
use missive_core::DEFAULT_CIPHERSUITE;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use serde_json::json;

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
    fn new(n: usize) -> anyhow::Result<Self> {
        Device::sharing(Provider::new()?, n)
    }

    /// A device whose private keys go to `provider`.
    fn sharing(provider: Provider, n: usize) -> anyhow::Result<Self> {
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519)?;
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

    fn key_package(&self) -> anyhow::Result<KeyPackage> {
        Ok(KeyPackage::builder()
            .leaf_node_capabilities(capabilities())
            .build(
                DEFAULT_CIPHERSUITE,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )?
            .key_package()
            .clone())
    }
}

/// An MLS message as it crosses the network, and back.
fn wire(message: &MlsMessageOut) -> anyhow::Result<(usize, MlsMessageIn)> {
    let bytes = message.tls_serialize_detached()?;
    Ok((bytes.len(), MlsMessageIn::tls_deserialize_exact(&bytes)?))
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
) -> anyhow::Result<Built> {
    let started = Instant::now();
    let bundle = group
        .commit_builder()
        .propose_adds(add)
        .propose_removals(remove)
        .force_self_update(path)
        .load_psks(creator.provider.storage())?
        .use_ratchet_tree_extension(true)
        .build(
            creator.provider.rand(),
            creator.provider.crypto(),
            &creator.signer,
            |_| true,
        )?
        .stage_commit(&creator.provider)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let (commit, welcome, _) = bundle.into_messages();
    Ok(Built {
        ms,
        commit,
        welcome,
    })
}

/// A member's time to process (not merge) a commit.
fn process(member: &Device, group: &mut MlsGroup, commit: &MlsMessageOut) -> anyhow::Result<f64> {
    let (_, incoming) = wire(commit)?;
    let message = incoming
        .try_into_protocol_message()
        .map_err(|_| anyhow!("not a protocol message"))?;
    let started = Instant::now();
    let processed = group.process_message(&member.provider, message)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(_) => Ok(ms),
        _ => Err(anyhow!("not a commit")),
    }
}

/// A device joining from a Welcome: the time, and the group.
fn join(device: &Device, welcome: &MlsMessageOut) -> anyhow::Result<(f64, MlsGroup)> {
    let (_, incoming) = wire(welcome)?;
    let MlsMessageBodyIn::Welcome(welcome) = incoming.extract() else {
        return Err(anyhow!("not a Welcome"));
    };
    let started = Instant::now();
    let group = StagedWelcome::new_from_welcome(&device.provider, &join_config(), welcome, None)?
        .into_group(&device.provider)?;
    Ok((started.elapsed().as_secs_f64() * 1e3, group))
}

pub fn run(size: usize) -> anyhow::Result<()> {
    anyhow::ensure!(size >= 3, "--group needs at least 3 devices");
    let started = Instant::now();
    let creator = Device::new(0)?;
    let member = Device::new(1)?;
    // The other members' key packages: their private keys are never needed here (one
    // provider holds them all), but each has a signature key of its own.
    let mut packages = vec![member.key_package()?];
    let mut shared = Some(Provider::new()?);
    for n in 2..size {
        let other = Device::sharing(shared.take().context("a provider")?, n)?;
        packages.push(other.key_package()?);
        shared = Some(other.provider);
    }
    let mut group = MlsGroup::new(
        &creator.provider,
        &creator.signer,
        &create_config(),
        creator.credential.clone(),
    )?;
    let bulk = commit(&creator, &mut group, packages, Vec::new(), false)?;
    group.merge_pending_commit(&creator.provider)?;
    let bulk_welcome = bulk.welcome.context("a bulk add has a Welcome")?;
    let (_, mut member_group) = join(&member, &bulk_welcome)?;
    eprintln!(
        "group of {size} devices built in {:.1} s (bulk add {:.0} ms)",
        started.elapsed().as_secs_f64(),
        bulk.ms
    );

    let mut report = serde_json::Map::new();
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
            let welcome = built.welcome.context("an add has a Welcome")?;
            welcome_bytes = wire(&welcome)?.0;
            joining.push(join(&newcomer, &welcome)?.0);
            group.clear_pending_commit(creator.provider.storage())?;
        }
        let name = if path {
            "add_with_path"
        } else {
            "add_without_path"
        };
        println!(
            "{name}: committer {:.1} ms, commit {commit_bytes} B (every member downloads it: {:.1} MB in all), \
             member processes it in {:.1} ms; the newcomer's Welcome {welcome_bytes} B, joins in {:.1} ms",
            median(build.clone()),
            (commit_bytes * (size - 1)) as f64 / 1e6,
            median(receive.clone()),
            median(joining.clone()),
        );
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
        .context("the group has members")?;
    let (mut build, mut receive) = (Vec::new(), Vec::new());
    let mut commit_bytes = 0;
    for _ in 0..RUNS {
        let built = commit(&creator, &mut group, Vec::new(), vec![last], false)?;
        build.push(built.ms);
        commit_bytes = wire(&built.commit)?.0;
        receive.push(process(&member, &mut member_group, &built.commit)?);
        group.clear_pending_commit(creator.provider.storage())?;
    }
    println!(
        "remove: committer {:.1} ms, commit {commit_bytes} B ({:.1} MB downloaded in all), member processes it in {:.1} ms",
        median(build.clone()),
        (commit_bytes * (size - 2)) as f64 / 1e6,
        median(receive.clone()),
    );
    report.insert(
        "remove".into(),
        json!({"commit_ms": median(build), "commit_bytes": commit_bytes, "process_ms": median(receive)}),
    );
    report.insert("devices".into(), json!(size));
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
