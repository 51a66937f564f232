//! Voice calls from the command line: two members of a conversation call each other through
//! the server's media relay, each playing a tone and recording what it hears; each hears the
//! other's tone, and what the relay forwarded does not hold it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::World;

const RATE: u32 = 48_000;

/// Writes `seconds` of a sine at `hz` as a 48 kHz 16-bit mono WAV file.
fn tone(path: &Path, hz: f64, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for i in 0..(seconds * f64::from(RATE)) as usize {
        let t = i as f64 / f64::from(RATE);
        w.write_sample((0.4 * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16)
            .expect("sample");
    }
    w.finalize().expect("finalize");
}

fn samples(path: &Path) -> Vec<f64> {
    hound::WavReader::open(path)
        .expect("recording")
        .samples::<i16>()
        .map(|s| f64::from(s.expect("sample")))
        .collect()
}

/// The power of `samples` at `hz` (Goertzel).
fn power_at(samples: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The share of each of `tones` in the sound of `samples`, averaged over its 100 ms windows
/// that are not silent (a window's share: the tone's power over the window's energy, 1 for a
/// pure tone); and how many such windows there are.
fn shares(samples: &[f64], tones: &[f64]) -> (Vec<f64>, usize) {
    let mut sums = vec![0.0; tones.len()];
    let mut windows = 0;
    for window in samples.chunks_exact(RATE as usize / 10) {
        let energy = window.iter().map(|x| x * x).sum::<f64>() * window.len() as f64 / 2.0;
        let rms = (window.iter().map(|x| x * x).sum::<f64>() / window.len() as f64).sqrt();
        if rms < 300.0 {
            continue;
        }
        windows += 1;
        for (sum, hz) in sums.iter_mut().zip(tones) {
            *sum += power_at(window, *hz) / energy;
        }
    }
    let n = windows.max(1) as f64;
    (sums.into_iter().map(|s| s / n).collect(), windows)
}

/// Waits for a spawned command to end; fails the test with its output if it did not succeed.
fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
}

/// The first call event in `state` that `args` (as `who`, one JSON object per line) shows,
/// waiting for it to arrive.
fn wait_for_event(w: &World, who: &str, args: &[&str], state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    loop {
        let shown = w.ok(who, args);
        seen.push_str(&shown);
        let found = shown
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|m| m["event"] == "call" && m["state"] == state);
        if let Some(event) = found {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no call {state} shown to {who}: {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_call(w: &World, who: &str, conversation: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = w.ok(who, &["calls", "--json"]);
        if let Some(call) = listed
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|c| c["conversation"] == conversation)
        {
            return call;
        }
        assert!(Instant::now() < deadline, "no call listed for {who}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_members_hear_each_other_and_the_relay_hears_nothing() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let conv = w.group("alice", "Cabinet", &["bob@example.org"]);
    w.ok("bob", &["sync"]);
    let dir = w.dir.path();
    tone(&dir.join("alice.wav"), 440.0, 12.0);
    tone(&dir.join("bob.wav"), 880.0, 12.0);
    w.server().sfu().tap();

    let alice = call(&w, "alice", "start", &conv, Some("9"));
    let listed = wait_for_call(&w, "bob", &conv);
    assert_eq!(listed["devices"].as_array().map(Vec::len), Some(1));
    // Bob's devices ring: the encrypted call message reached him.
    let ring = wait_for_event(&w, "bob", &["sync", "--json"], "started");
    assert_eq!(ring["sender"], "alice@example.org");
    assert_eq!(ring["call_id"], listed["call_id"]);
    let bob = call(&w, "bob", "join", &conv, Some("5"));
    let bob_said = finish(bob, "bob's call");
    let alice_said = finish(alice, "alice's call");
    eprintln!("alice: {alice_said}\nbob: {bob_said}");
    assert!(bob_said.contains("heard alice@example.org"), "{bob_said}");
    assert!(
        alice_said.contains("bob@example.org joined"),
        "{alice_said}"
    );
    assert!(alice_said.contains("bob@example.org left"), "{alice_said}");

    // The last one out (alice) told the conversation the call ended, and who was in it.
    let ended = wait_for_event(&w, "bob", &["sync", "--json"], "ended");
    assert_eq!(ended["sender"], "alice@example.org");
    assert_eq!(
        ended["answered"],
        serde_json::json!(["alice@example.org", "bob@example.org"])
    );
    assert!(
        ended["seconds"]
            .as_u64()
            .is_some_and(|s| (8..=11).contains(&s)),
        "{ended}"
    );

    // Each hears the other's tone, and only that.
    let (heard, windows) = shares(&samples(&dir.join("bob-heard.wav")), &[440.0, 880.0]);
    eprintln!(
        "bob hears 440 Hz {:.3}, 880 Hz {:.3} over {windows} windows",
        heard[0], heard[1]
    );
    assert!(windows >= 40, "bob heard {windows} windows of sound");
    assert!(heard[0] > 0.8 && heard[1] < 0.05, "bob hears {heard:?}");
    let (heard, windows) = shares(&samples(&dir.join("alice-heard.wav")), &[440.0, 880.0]);
    eprintln!(
        "alice hears 440 Hz {:.3}, 880 Hz {:.3} over {windows} windows",
        heard[0], heard[1]
    );
    assert!(windows >= 40, "alice heard {windows} windows of sound");
    assert!(heard[1] > 0.8 && heard[0] < 0.05, "alice hears {heard:?}");

    // What the relay forwarded, decoded as Opus without the SFrame keys, is no tone.
    let tapped = w.server().sfu().tapped();
    assert!(
        tapped.len() > 100,
        "the relay forwarded {} frames",
        tapped.len()
    );
    let mut decoder = opus::Decoder::new(RATE, opus::Channels::Mono).expect("decoder");
    let mut decoded = Vec::new();
    let mut pcm = vec![0i16; 5760];
    for frame in &tapped {
        if let Ok(n) = decoder.decode(frame, &mut pcm, false) {
            decoded.extend(pcm[..n].iter().map(|s| f64::from(*s)));
        }
    }
    let (carried, _) = shares(&decoded, &[440.0, 880.0]);
    eprintln!("the relay's frames decoded as Opus without the keys: {carried:?}");
    assert!(
        carried.iter().all(|s| *s < 0.05),
        "the relay's frames carry a tone: {carried:?}"
    );
}

/// Spawns `missive call VERB CONV` as `who`, playing `WHO.wav` and recording `WHO-heard.wav`
/// in the world's directory, for `seconds` if given.
fn call(w: &World, who: &str, verb: &str, conv: &str, seconds: Option<&str>) -> Child {
    let file = |name: String| w.dir.path().join(name).to_string_lossy().into_owned();
    let (play, record) = (file(format!("{who}.wav")), file(format!("{who}-heard.wav")));
    let mut args = vec!["call", verb, conv, "--play", &play, "--record", &record];
    if let Some(seconds) = seconds {
        args.extend(["--duration", seconds]);
    }
    w.command(who, &args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("call runs")
}

#[test]
fn a_group_call_of_three_and_a_member_removed_during_it() {
    let w = World::new();
    for who in ["alice", "bob", "carol", "dave"] {
        w.register(who);
    }
    let conv = w.group(
        "dave",
        "Crisis cell",
        &["alice@example.org", "bob@example.org", "carol@example.org"],
    );
    for who in ["alice", "bob", "carol"] {
        w.ok(who, &["sync"]);
    }
    let dir = w.dir.path();
    for (who, hz) in [("alice", 440.0), ("bob", 880.0), ("carol", 660.0)] {
        tone(&dir.join(format!("{who}.wav")), hz, 14.0);
    }
    let alice = call(&w, "alice", "start", &conv, Some("12"));
    wait_for_call(&w, "bob", &conv);
    let bob = call(&w, "bob", "join", &conv, Some("10"));
    // Carol stays until she is made to leave.
    let carol = call(&w, "carol", "join", &conv, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while wait_for_call(&w, "dave", &conv)["devices"]
        .as_array()
        .map_or(0, Vec::len)
        < 3
    {
        assert!(Instant::now() < deadline, "three in the call");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Three talk for three seconds; then dave (not in the call) removes carol from the group.
    std::thread::sleep(Duration::from_secs(3));
    w.ok("dave", &["group", "remove", &conv, "carol@example.org"]);
    let removed_at = Instant::now();
    let carol_said = finish(carol, "carol's call");
    assert!(carol_said.contains("no longer a member"), "{carol_said}");
    assert!(!carol_said.contains("could not"), "{carol_said}");
    let carol_devices = w.server().sfu().rooms();
    let bob_said = finish(bob, "bob's call");
    let alice_said = finish(alice, "alice's call");
    eprintln!("alice: {alice_said}\nbob: {bob_said}\ncarol: {carol_said}");
    // The relay let carol go at the removal: two devices were left in the call.
    assert!(carol_devices
        .values()
        .all(|room| room.participants.len() == 2));
    assert!(
        removed_at.elapsed() > Duration::from_secs(3),
        "the others talked on"
    );
    // Frames alice sealed under the new epoch before bob learnt of it waited for his rekey:
    // none refused, none lost.
    for said in [&alice_said, &bob_said] {
        assert!(!said.contains("refused"), "{said}");
    }

    // Dave, who stayed out of it, has it in his history as a call he missed.
    let ended = wait_for_event(&w, "dave", &["sync", "--json"], "ended");
    let answered: Vec<&str> = ended["answered"]
        .as_array()
        .expect("answered")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        answered.contains(&"alice@example.org") && answered.contains(&"bob@example.org"),
        "{ended}"
    );
    assert!(!answered.contains(&"dave@example.org"), "{ended}");

    // Each heard both others while the three were together (a second or more of each tone
    // leading), and never their own tone.
    let tones = [440.0, 880.0, 660.0];
    for (i, who) in ["alice", "bob", "carol"].iter().enumerate() {
        let heard = samples(&dir.join(format!("{who}-heard.wav")));
        let (share, windows) = shares(&heard, &tones);
        eprintln!("{who} hears {share:.3?} over {windows} windows");
        assert!(share[i] < 0.05, "{who} hears their own tone: {share:?}");
        for (j, hz) in tones.iter().enumerate() {
            if j == i {
                continue;
            }
            let leading = heard
                .chunks_exact(RATE as usize / 10)
                .filter(|w| shares(w, &[*hz]).0[0] > 0.25)
                .count();
            assert!(leading >= 10, "{who} heard {hz} Hz in {leading} windows");
        }
    }
    // After the removal, alice and bob still hear each other (under the new epoch's keys),
    // and carol's tone is gone: the last two seconds of bob's recording.
    let bob_heard = samples(&dir.join("bob-heard.wav"));
    let tail = &bob_heard[bob_heard.len().saturating_sub(2 * RATE as usize)..];
    let (share, windows) = shares(tail, &tones);
    eprintln!("bob hears at the end {share:.3?} over {windows} windows");
    assert!(
        windows >= 15 && share[0] > 0.8 && share[2] < 0.05,
        "{share:?}"
    );
}

/// A host of its own for a test: a network namespace joined to this one by a veth pair, with
/// `host` on this side and `guest` inside; its link can be cut.
struct Netns {
    name: String,
    host: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2) runs");
    assert!(status.success(), "ip {args:?} failed");
}

impl Netns {
    fn new() -> Netns {
        let id = std::process::id() % 250;
        let name = format!("mcall{}", std::process::id());
        let (host_if, guest_if) = (format!("mch{id}"), format!("mcg{id}"));
        let host = Ipv4Addr::new(10, 231, id as u8, 1);
        let guest = format!("10.231.{id}.2/24");
        ip(&["netns", "add", &name]);
        let ns = Netns { name, host };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &guest_if,
        ]);
        ip(&["link", "set", &guest_if, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{host}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ns.inside(&["ip", "addr", "add", &guest, "dev", &guest_if]);
        ns.inside(&["ip", "link", "set", &guest_if, "up"]);
        ns.inside(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn inside(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend(args);
        ip(&all);
    }

    /// `command`, run inside.
    fn run(&self, command: &std::process::Command) -> std::process::Command {
        let mut inside = std::process::Command::new("ip");
        inside
            .args(["netns", "exec", &self.name])
            .arg(command.get_program())
            .args(command.get_args());
        inside
    }

    /// Takes the link down (`false`) or up again.
    fn link(&self, up: bool) {
        let guest_if = format!("mcg{}", std::process::id() % 250);
        self.inside(&[
            "ip",
            "link",
            "set",
            &guest_if,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and so the pair.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn a_call_survives_a_five_second_network_cut() {
    let ns = Netns::new();
    let w = World::listening(ns.host, |_| {});
    w.register("alice");
    w.register("bob");
    let conv = w.group("alice", "Standby", &["bob@example.org"]);
    w.ok("bob", &["sync"]);
    let dir = w.dir.path();
    tone(&dir.join("alice.wav"), 440.0, 20.0);
    tone(&dir.join("bob.wav"), 880.0, 20.0);

    let alice = call(&w, "alice", "start", &conv, Some("17"));
    wait_for_call(&w, "bob", &conv);
    // Bob is on the other host.
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let bob = ns
        .run(&w.command(
            "bob",
            &[
                "call",
                "join",
                &conv,
                "--play",
                &file("bob.wav"),
                "--record",
                &file("bob-heard.wav"),
                "--duration",
                "15",
            ],
        ))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bob joins");
    std::thread::sleep(Duration::from_secs(4));
    ns.link(false);
    std::thread::sleep(Duration::from_secs(5));
    ns.link(true);
    let bob_said = finish(bob, "bob's call");
    let alice_said = finish(alice, "alice's call");
    eprintln!("alice: {alice_said}\nbob: {bob_said}");

    // Each heard the other before the cut, nothing during it, and the other again after it
    // (the recordings' last three seconds).
    for (who, hz) in [("bob", 440.0), ("alice", 880.0)] {
        let heard = samples(&dir.join(format!("{who}-heard.wav")));
        let windows: Vec<bool> = heard
            .chunks_exact(RATE as usize / 10)
            .map(|w| shares(w, &[hz]).0[0] > 0.5)
            .collect();
        let first = windows.iter().position(|t| *t).expect("heard at all");
        let last = windows.iter().rposition(|t| *t).expect("heard at all");
        let gap = windows[first..last]
            .split(|t| *t)
            .map(<[bool]>::len)
            .max()
            .unwrap_or(0);
        eprintln!("{who}: tone from window {first} to {last}, longest gap {gap} windows");
        assert!(gap >= 30, "{who}'s recording shows no cut ({gap} windows)");
        let tail = &heard[heard.len().saturating_sub(3 * RATE as usize)..];
        let (share, windows) = shares(tail, &[hz]);
        assert!(
            windows >= 15 && share[0] > 0.8,
            "{who} hears {hz} Hz again after the cut: {share:?} over {windows} windows"
        );
    }
}
