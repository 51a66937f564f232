//! What a newcomer meets in the first hour: piped input sent whole and in order, listings cut
//! by `head` ending quietly, the short ids the client prints taken back, homes made only when
//! registration succeeds, a busy home waited for, and errors that name a cause a person can
//! act on.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{said, World};

/// The one-to-one conversation of alice and bob, with one message bob has read.
fn dm(w: &World) -> String {
    w.ok("alice", &["dm", "bob@example.org", "hello"]);
    assert_eq!(w.sync("bob"), [said("alice", "hello")]);
    let conv: Value =
        serde_json::from_str(w.ok("alice", &["conversations", "--json"]).trim()).expect("json");
    conv["id"].as_str().expect("id").to_owned()
}

/// A failing command's stderr.
fn fails(w: &World, who: &str, args: &[&str]) -> String {
    let out = w.run(who, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} must fail: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    stderr
}

#[test]
fn piped_chat_sends_every_line_once_in_order_through_the_rate_limit() {
    const LINES: usize = 3000;
    // A device limit a pipe outruns many times over (a second's worth of burst, then 200
    // requests a second), so that the client meets `429` and must wait rather than drop.
    let w = World::with_config(|c| {
        c.rate_limit_device_per_second = 200;
        c.rate_limit_device_burst = 200;
        c.rate_limit_ip_per_second = 0;
    });
    w.register("alice");
    w.register("bob");
    let conv = dm(&w);

    let mut chat = w
        .command("alice", &["chat", &conv])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat starts");
    let mut stdin = chat.stdin.take().expect("stdin");
    let input: String = (1..=LINES).map(|i| format!("line {i}\n")).collect();
    stdin.write_all(input.as_bytes()).expect("pipe the lines");
    drop(stdin);
    let out = chat.wait_with_output().expect("chat ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chat: {stderr}");
    assert!(!stderr.contains("not sent"), "{stderr}");

    let expected: Vec<(String, String)> = (1..=LINES)
        .map(|i| said("alice", &format!("line {i}")))
        .collect();
    assert!(
        w.sync("bob") == expected,
        "bob receives every line once, in the order piped"
    );
}

#[test]
fn a_reader_that_goes_away_ends_a_listing_quietly() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let conv = dm(&w);
    for i in 0..20 {
        w.ok("alice", &["send", &conv, &format!("message {i}")]);
    }
    for args in [
        vec!["history", conv.as_str()],
        vec!["conversations"],
        vec!["sync"],
    ] {
        // `missive ... | head -0`: the reader is gone before the first line is written.
        let mut child = w
            .command("alice", &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("missive runs");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("missive ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: nothing on stderr: {stderr}");
    }
}

#[test]
fn the_short_ids_the_client_prints_are_taken_back() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let conv = dm(&w);
    // `sync` shows `[c5faf73d] alice@example.org: hello`: those 8 characters name it.
    w.ok("alice", &["send", &conv, "again"]);
    let shown = w.ok("bob", &["sync"]);
    let short = shown
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.split_once(']'))
        .map(|(id, _)| id.to_owned())
        .expect("[short id] first");
    assert_eq!(short, conv[..8]);
    w.ok("bob", &["send", &short, "by its short id"]);
    w.ok("bob", &["send", &conv.to_uppercase(), "in capitals"]);
    assert_eq!(
        w.sync("alice"),
        [said("bob", "by its short id"), said("bob", "in capitals")]
    );
    let history = w.ok("alice", &["history", &short]);
    assert_eq!(history.lines().count(), 4, "{history}");

    let stderr = fails(&w, "bob", &["send", &conv[..5], "too short"]);
    assert!(stderr.contains("first 8 characters"), "{stderr}");
    let stderr = fails(&w, "bob", &["send", "0123456789abcdef", "unknown"]);
    assert!(
        stderr.contains("no conversation 0123456789abcdef"),
        "{stderr}"
    );
}

#[test]
fn a_home_is_made_only_by_a_registration_that_succeeds() {
    let mut w = World::new();
    let url = w.server().url();
    let port = w.server().addr().port().to_string();
    let carol = w.home("carol");
    let register = |w: &World, server: &str, invite: &str| -> String {
        fails(
            w,
            "carol",
            &[
                "register",
                "--server",
                server,
                "--invite",
                invite,
                "carol@example.org",
            ],
        )
    };

    let stderr = register(&w, &url, "not-a-real-invite");
    assert!(stderr.contains("invite"), "{stderr}");
    assert!(!carol.exists(), "a refused registration leaves no home");

    let stderr = register(&w, &format!("127.0.0.1:{port}"), "x");
    assert!(
        stderr.contains("the server URL needs http:// or https://"),
        "{stderr}"
    );
    assert!(!carol.exists());

    let stderr = fails(
        &w,
        "carol",
        &[
            "join",
            "--server",
            &url,
            "abcd-efgh-ijkl-mnop",
            "--timeout",
            "1",
        ],
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!carol.exists(), "a failed join leaves no home");

    // A command without an account names the home it looked in and creates nothing.
    let stderr = fails(&w, "carol", &["sync"]);
    assert!(stderr.contains(&carol.display().to_string()), "{stderr}");
    assert!(stderr.contains("missive register"), "{stderr}");
    assert!(!carol.exists());

    // An account in place survives a registration attempt over it.
    w.register("alice");
    let stderr = fails(
        &w,
        "alice",
        &[
            "register",
            "--server",
            &url,
            "--invite",
            "x",
            "alice@example.org",
        ],
    );
    assert!(stderr.contains("already holds"), "{stderr}");
    assert!(w.ok("alice", &["whoami"]).contains("alice@example.org"));

    // With the server down: the cause, without the API's paths.
    w.server.take().expect("server").stop();
    let stderr = register(&w, &url, "x");
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    assert!(!stderr.contains("/v1/"), "{stderr}");
    assert!(!carol.exists());
    let stderr = fails(&w, "alice", &["dm", "bob@example.org", "hi"]);
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    assert!(!stderr.contains("/v1/"), "{stderr}");
}

#[test]
fn errors_name_what_a_person_can_act_on() {
    let w = World::new();
    for name in ["alice", "bob"] {
        w.register(name);
    }
    let stderr = fails(&w, "alice", &["dm", "carol@other.org", "hi"]);
    assert!(
        stderr.contains("does not serve the domain other.org"),
        "{stderr}"
    );
    let stderr = fails(&w, "alice", &["dm", "nobody@example.org", "hi"]);
    assert!(
        stderr.contains("no user nobody@example.org on this server"),
        "{stderr}"
    );
    let stderr = fails(
        &w,
        "alice",
        &[
            "group",
            "create",
            "G",
            "--member",
            "bob@example.org",
            "--member",
            "nobody@example.org",
        ],
    );
    assert!(stderr.contains("nobody@example.org"), "{stderr}");

    // An address has one spelling, whatever the capitals typed.
    w.ok("alice", &["dm", "Bob@Example.ORG", "capitals"]);
    assert_eq!(w.sync("bob"), [said("alice", "capitals")]);
    let conv: Value =
        serde_json::from_str(w.ok("alice", &["conversations", "--json"]).trim()).expect("json");
    assert_eq!(conv["dm"], "bob@example.org");
    let conv = conv["id"].as_str().expect("id");

    let stderr = fails(&w, "alice", &["send", conv, "  "]);
    assert!(stderr.contains("empty message"), "{stderr}");
    let group = super::last_line(&w.ok(
        "alice",
        &["group", "create", "G", "--member", "bob@example.org"],
    ));
    let stderr = fails(&w, "alice", &["group", "add", &group, "BOB@example.org"]);
    assert!(
        stderr.contains("bob@example.org is already a member"),
        "{stderr}"
    );
    assert_eq!(
        w.sync("bob"),
        Vec::<(String, String)>::new(),
        "nothing was sent for the refusals"
    );
}

#[test]
fn a_second_command_on_a_busy_home_waits_for_it() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let conv = dm(&w);
    let mut chat = w
        .command("bob", &["chat", &conv])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat starts");
    // Once it says it is chatting, it holds the home.
    let mut banner = String::new();
    let mut chat_stderr = BufReader::new(chat.stderr.take().expect("stderr"));
    chat_stderr.read_line(&mut banner).expect("banner");
    assert!(banner.starts_with("chatting in"), "{banner}");

    let started = Instant::now();
    let send = std::thread::scope(|s| {
        let send = s.spawn(|| w.run("bob", &["send", &conv, "after the chat"]));
        std::thread::sleep(Duration::from_millis(1500));
        drop(chat.stdin.take());
        assert!(chat.wait().expect("chat ends").success());
        send.join().expect("send thread")
    });
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(w.sync("alice"), [said("bob", "after the chat")]);
    drop(chat_stderr);
}
