//! Voice calls from the command line: two members of a conversation call each other through
//! the server's media relay, each playing a tone and recording what it hears; each hears the
//! other's tone, and what the relay forwarded does not hold it.

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

/// The strongest frequency of `samples` between 100 Hz and 2 kHz (10 Hz steps), and the share
/// of the signal's energy it holds.
fn dominant(samples: &[f64]) -> (f64, f64) {
    let energy: f64 = samples.iter().map(|x| x * x).sum::<f64>() * samples.len() as f64 / 2.0;
    let (hz, power) = (10..=200)
        .map(|i| f64::from(i) * 10.0)
        .map(|hz| (hz, power_at(samples, hz)))
        .fold((0.0, 0.0), |best, x| if x.1 > best.1 { x } else { best });
    (hz, if energy > 0.0 { power / energy } else { 0.0 })
}

/// Waits for a spawned command to end; fails the test with its output if it did not succeed.
fn finish(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {stderr}");
    stderr
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
    tone(&dir.join("a440.wav"), 440.0, 12.0);
    tone(&dir.join("b880.wav"), 880.0, 12.0);
    w.server().sfu().tap();

    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let alice = w
        .command(
            "alice",
            &["call", "start", &conv, "--play", &path("a440.wav"), "--record", &path("alice-heard.wav"), "--duration", "9"],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("alice calls");
    let listed = wait_for_call(&w, "bob", &conv);
    assert_eq!(listed["devices"].as_array().map(Vec::len), Some(1));
    let bob = w
        .command(
            "bob",
            &["call", "join", &conv, "--play", &path("b880.wav"), "--record", &path("bob-heard.wav"), "--duration", "5"],
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("bob joins");
    let bob_said = finish(bob, "bob's call");
    let alice_said = finish(alice, "alice's call");
    assert!(bob_said.contains("heard alice@example.org"), "{bob_said}");
    assert!(alice_said.contains("bob@example.org joined"), "{alice_said}");
    assert!(alice_said.contains("bob@example.org left"), "{alice_said}");

    // Each hears the other's tone.
    let (hz, share) = dominant(&samples(&dir.join("bob-heard.wav")));
    assert_eq!(hz, 440.0, "bob hears alice's tone ({share:.2} of the energy)");
    assert!(share > 0.5, "bob's recording is mostly the tone: {share:.2}");
    let (hz, share) = dominant(&samples(&dir.join("alice-heard.wav")));
    assert_eq!(hz, 880.0, "alice hears bob's tone ({share:.2} of the energy)");
    assert!(share > 0.5, "alice's recording is mostly the tone: {share:.2}");

    // What the relay forwarded, decoded as Opus without the SFrame keys, is no tone.
    let tapped = w.server().sfu().tapped();
    assert!(tapped.len() > 100, "the relay forwarded {} frames", tapped.len());
    let mut decoder = opus::Decoder::new(RATE, opus::Channels::Mono).expect("decoder");
    let mut decoded = Vec::new();
    let mut pcm = vec![0i16; 5760];
    for frame in &tapped {
        if let Ok(n) = decoder.decode(frame, &mut pcm, false) {
            decoded.extend(pcm[..n].iter().map(|s| f64::from(*s)));
        }
    }
    for hz in [440.0, 880.0] {
        let energy: f64 = decoded.iter().map(|x| x * x).sum::<f64>() * decoded.len() as f64 / 2.0;
        let share = if energy > 0.0 { power_at(&decoded, hz) / energy } else { 0.0 };
        assert!(share < 0.05, "the relay's frames carry the {hz} Hz tone: {share:.2}");
    }
}
