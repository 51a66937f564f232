//! Acceptance tests of the `missive` binary against a real server on port 0, as a user would
//! script it.

mod calls;
mod compat;
mod conversation;
mod files;
mod linking;
mod newcomer;
mod recovery;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use missive_server::config::Config;
use missive_server::{auth, now_secs, RunningServer};
use serde_json::Value;
use tempfile::TempDir;

struct World {
    dir: TempDir,
    server: Option<RunningServer>,
}

impl World {
    fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A world whose server runs with the default configuration changed by `change`.
    fn with_config(change: impl FnOnce(&mut Config)) -> Self {
        Self::listening(Ipv4Addr::LOCALHOST, change)
    }

    /// A world whose server (API and call media) listens on `ip`, configured by `change`.
    fn listening(ip: Ipv4Addr, change: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::init(&dir.path().join("server"), "example.org").expect("init");
        config.media_listen = format!("{ip}:0");
        change(&mut config);
        config.save(&dir.path().join("server")).expect("save");
        let server = RunningServer::start(&dir.path().join("server"), &format!("{ip}:0"), 2)
            .expect("server");
        World {
            dir,
            server: Some(server),
        }
    }

    fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    /// Stops the server and starts it again on the same address and data.
    fn restart_server(&mut self) {
        let server = self.server.take().expect("server running");
        let addr = server.addr();
        server.stop();
        self.server =
            Some(RunningServer::start(&self.data(), &addr.to_string(), 2).expect("restart"));
    }

    fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join("homes").join(name)
    }

    /// Registers `name` with an invite; returns what `register` printed.
    fn register(&self, name: &str) -> String {
        self.register_as(name, &format!("{name}@example.org"))
    }

    /// Registers `address` (of a domain the server allows) in the home of `name`.
    fn register_as(&self, name: &str, address: &str) -> String {
        let code = auth::new_invite_code();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        rt.block_on(self.server().store().create_invite(
            address,
            auth::hash_secret(&code),
            now_secs() + 600,
        ))
        .expect("invite");
        let url = self.server().url();
        self.ok(
            name,
            &["register", "--server", &url, "--invite", &code, address],
        )
    }

    /// Creates a group as `who` with `members` (addresses); returns its id.
    fn group(&self, who: &str, name: &str, members: &[&str]) -> String {
        let mut args = vec!["group", "create", name];
        for m in members {
            args.extend(["--member", m]);
        }
        last_line(&self.ok(who, &args))
    }

    /// `missive --home HOME ARGS` for user `name`, to run or spawn.
    fn command(&self, name: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
        command.arg("--home").arg(self.home(name)).args(args);
        command
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.command(name, args).output().expect("missive runs")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.run(name, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "missive {args:?} as {name} failed: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The texts `sync --json` prints, with their senders: the messages a sync shows (not
    /// events: settings changes, unreadable messages).
    fn sync(&self, name: &str) -> Vec<(String, String)> {
        self.ok(name, &["sync", "--json"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
            .filter(|v| v.get("event").is_none())
            .map(|v| {
                (
                    v["sender"].as_str().expect("sender").to_owned(),
                    v["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect()
    }
}

fn last_line(s: &str) -> String {
    s.lines().last().expect("output").trim().to_owned()
}

fn said(sender: &str, text: &str) -> (String, String) {
    (format!("{sender}@example.org"), text.to_owned())
}

#[test]
fn two_officials_talk_one_to_one_and_in_groups() {
    let w = World::new();
    for name in ["alice", "bob", "carol", "dave"] {
        w.register(name);
    }
    // A DM both ways.
    w.ok("alice", &["dm", "bob@example.org", "hello bob"]);
    assert_eq!(w.sync("bob"), [said("alice", "hello bob")]);
    w.ok("bob", &["dm", "alice@example.org", "hello alice"]);
    assert_eq!(w.sync("alice"), [said("bob", "hello alice")]);
    assert!(w.sync("alice").is_empty(), "nothing is shown twice");
    let convs: Vec<Value> = w
        .ok("bob", &["conversations", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        convs.len(),
        1,
        "both directions use one conversation: {convs:?}"
    );

    // A three-user group, then an add and a remove.
    let group = last_line(&w.ok(
        "alice",
        &[
            "group",
            "create",
            "Cabinet",
            "--member",
            "bob@example.org",
            "--member",
            "carol@example.org",
        ],
    ));
    w.ok("carol", &["send", &group, "carol here"]);
    assert_eq!(w.sync("bob"), [said("carol", "carol here")]);
    assert_eq!(w.sync("alice"), [said("carol", "carol here")]);
    w.ok("bob", &["group", "add", &group, "dave@example.org"]);
    w.ok("dave", &["send", &group, "dave joined"]);
    let listing: Value = w
        .ok("carol", &["conversations", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|c| c["id"] == group.as_str())
        .expect("carol lists the group");
    assert_eq!(listing["name"], "Cabinet");
    assert_eq!(
        listing["members"],
        serde_json::json!([
            "alice@example.org",
            "bob@example.org",
            "carol@example.org",
            "dave@example.org"
        ])
    );

    w.ok("alice", &["group", "remove", &group, "carol@example.org"]);
    w.ok("alice", &["send", &group, "without carol"]);
    assert_eq!(w.sync("carol"), [said("dave", "dave joined")]);
    assert_eq!(w.sync("dave"), [said("alice", "without carol")]);
    assert_eq!(
        w.sync("bob"),
        [said("dave", "dave joined"), said("alice", "without carol")]
    );
    let out = w.run("carol", &["send", &group, "am I still here?"]);
    assert!(!out.status.success(), "a removed member cannot send");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");

    let history: Vec<Value> = w
        .ok("bob", &["history", &group, "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let texts: Vec<&str> = history
        .iter()
        .map(|m| m["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["carol here", "dave joined", "without carol"]);
}

#[test]
fn nothing_is_lost_across_server_and_client_restarts() {
    let mut w = World::new();
    w.register("alice");
    w.register("bob");
    w.ok("alice", &["dm", "bob@example.org", "first"]);
    w.restart_server();
    w.ok("alice", &["dm", "bob@example.org", "second"]);
    w.restart_server();
    let group = last_line(&w.ok(
        "bob",
        &["group", "create", "Crisis", "--member", "alice@example.org"],
    ));
    w.restart_server();
    w.ok("bob", &["send", &group, "third"]);
    assert_eq!(
        w.sync("bob"),
        [said("alice", "first"), said("alice", "second")]
    );
    w.restart_server();
    assert_eq!(w.sync("alice"), [said("bob", "third")]);
    // Every command was a fresh client process: its state survived each restart.
    let history = w.ok("bob", &["history", &group, "--json"]);
    assert_eq!(history.lines().count(), 1);
}

/// Files below `dir` containing `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .expect("read")
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(path);
            }
        }
    }
    hits
}

#[test]
fn the_server_stores_no_plaintext() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let secrets = [
        "the-launch-code-is-4417",
        "meeting-moved-to-tuesday-room-12",
    ];
    w.ok("alice", &["dm", "bob@example.org", secrets[0]]);
    let group = last_line(&w.ok(
        "alice",
        &[
            "group",
            "create",
            "Top-Secret-Group-Name",
            "--member",
            "bob@example.org",
        ],
    ));
    w.ok("alice", &["send", &group, secrets[1]]);
    assert_eq!(w.sync("bob").len(), 2);
    // Each account home is readable by its owner only, its SQLite side files included.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let home = w.home("bob");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&home), 0o700);
        let files: Vec<_> = std::fs::read_dir(&home)
            .expect("home")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(files.iter().any(|f| f.ends_with("account.db")));
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    for needle in secrets.iter().chain(&["Top-Secret-Group-Name"]) {
        assert_eq!(
            files_containing(&w.data(), needle.as_bytes()),
            Vec::<PathBuf>::new(),
            "{needle} leaked"
        );
        // The same search finds it where it must be: in the recipient's own store.
        assert!(
            !files_containing(&w.home("bob"), needle.as_bytes()).is_empty(),
            "{needle} not found at bob"
        );
    }
}

#[test]
fn chat_shows_messages_live_and_sends_typed_lines() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let mut w = World::new();
    w.register("alice");
    w.register("bob");
    w.ok("alice", &["dm", "bob@example.org", "before chat"]);
    let conv: Value =
        serde_json::from_str(&w.ok("alice", &["conversations", "--json"])).expect("json");
    let conv = conv["id"].as_str().expect("id").to_owned();

    let mut chat = Command::new(env!("CARGO_BIN_EXE_missive"))
        .arg("--home")
        .arg(w.home("bob"))
        .args(["chat", &conv, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chat starts");
    let stdout = chat.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next_text = || -> String {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("chat prints a message");
        let v: Value = serde_json::from_str(&line).expect("json line");
        v["text"].as_str().expect("text").to_owned()
    };
    assert_eq!(
        next_text(),
        "before chat",
        "what arrived before chat started"
    );
    w.ok("alice", &["send", &conv, "live one"]);
    assert_eq!(next_text(), "live one", "pushed over the WebSocket");

    // The server restarts under the live chat: it reconnects and misses nothing.
    w.restart_server();
    w.ok("alice", &["send", &conv, "after restart"]);
    assert_eq!(next_text(), "after restart", "caught up after reconnecting");

    let mut stdin = chat.stdin.take().expect("stdin");
    writeln!(stdin, "typed by bob").expect("type");
    stdin.flush().expect("flush");
    let mut got = Vec::new();
    for _ in 0..50 {
        got = w.sync("alice");
        if !got.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got, [said("bob", "typed by bob")]);
    drop(stdin);
    let status = chat.wait().expect("chat exits");
    assert!(status.success(), "end of input leaves cleanly: {status}");
}

/// The safety number lines and the status line of `missive verify`.
fn safety_number(w: &World, who: &str, whom: &str, extra: &[&str]) -> (String, String) {
    let address = format!("{whom}@example.org");
    let mut args = vec!["verify", address.as_str()];
    args.extend_from_slice(extra);
    let out = w.ok(who, &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    (lines[1..4].join("\n"), lines[5].to_owned())
}

#[test]
fn a_changed_identity_key_blocks_sending_until_accepted() {
    let w = World::new();
    for name in ["alice", "bob", "carol"] {
        w.register(name);
    }
    w.ok("alice", &["dm", "bob@example.org", "hi"]);
    assert_eq!(w.sync("bob").len(), 1);
    let dm: Value = serde_json::from_str(&w.ok("bob", &["conversations", "--json"])).expect("json");
    let dm = dm["id"].as_str().expect("id").to_owned();

    // The same number on both sides, 12 groups of 5 digits.
    let (number, status) = safety_number(&w, "bob", "alice", &[]);
    assert_eq!(number, safety_number(&w, "alice", "bob", &[]).0);
    assert_eq!(number.split_whitespace().count(), 12);
    assert_eq!(status, "status: not verified");
    assert_eq!(
        safety_number(&w, "bob", "alice", &["--confirm"]).1,
        "status: verified"
    );
    assert_eq!(safety_number(&w, "bob", "alice", &[]).1, "status: verified");

    // The server swaps alice's identity key (threat 5), with a device list of its making,
    // and logs both in its transparency log (a swap left out of the log is refused outright).
    let rogue_home = tempfile::tempdir().expect("dir");
    let store = missive_core::sqlite::SqliteAccountStore::open(&rogue_home.path().join("a.db"))
        .expect("store");
    let (rogue, _) = missive_core::account::Account::create(
        Box::new(store),
        "alice@example.org",
        "http://127.0.0.1:9",
        None,
    )
    .expect("rogue");
    let list = rogue
        .next_device_list(&[rogue.listed_self()], &[], &[])
        .expect("rogue list");
    let leaf =
        missive_proto::kt::Leaf::of_list("alice@example.org", rogue.identity_key(), 1, &list);
    let db = rusqlite::Connection::open(w.data().join("missive.db")).expect("db");
    db.execute(
        "UPDATE users SET identity_key = ?1, device_list = ?2 WHERE address = 'alice@example.org'",
        rusqlite::params![rogue.identity_key().to_vec(), list],
    )
    .expect("swap");
    db.execute(
        "INSERT INTO kt_log (idx, address, version, leaf) VALUES \
         ((SELECT MAX(idx) + 1 FROM kt_log), 'alice@example.org', 1, ?1)",
        [leaf.to_bytes()],
    )
    .expect("log");
    let refused = |args: &[&str], needle: &str| {
        let out = w.run("bob", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    refused(
        &["verify", "alice@example.org"],
        "identity key of alice@example.org changed",
    );
    // What to compare before accepting: `verify` shows the number the new key gives.
    let shown = w.run("bob", &["verify", "alice@example.org"]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("status: changed, not accepted"), "{shown}");
    // The refusal ended the command, and it is kept with the other alerts.
    let kept = w.ok("bob", &["alerts"]);
    assert!(
        kept.contains("identity_changed: the identity key of alice@example.org changed"),
        "{kept}"
    );
    // Blocked everywhere alice is, the existing conversation included; others are unaffected.
    refused(&["send", &dm, "still there?"], "blocked");
    refused(
        &["group", "create", "G", "--member", "alice@example.org"],
        "changed",
    );
    w.ok("bob", &["dm", "carol@example.org", "unaffected"]);
    refused(&["trust", "alice@example.org"], "--accept-new-key");

    // Accepting is explicit; the number changes and the verified mark is gone.
    w.ok("bob", &["trust", "alice@example.org", "--accept-new-key"]);
    let (new_number, status) = safety_number(&w, "bob", "alice", &[]);
    assert_ne!(new_number, number);
    assert!(shown.contains(&new_number), "{shown} / {new_number}");
    assert_eq!(status, "status: not verified");
    // Trusting the server's key does not let the server in: alice's real device is certified
    // by her real key, which bob no longer trusts, so nothing is sent to it.
    refused(&["send", &dm, "to whom?"], "not certified");
    // Nothing reached alice, and her own device sees the key logged in her name.
    let out = w.run("alice", &["sync", "--json"]);
    assert_eq!(out.status.code(), Some(3), "an alert");
    assert!(String::from_utf8_lossy(&out.stderr).contains("own_key_logged"));
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
}

#[test]
fn a_device_the_server_adds_to_your_account_is_flagged() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let devices = |who: &str| -> (Vec<Value>, Output) {
        let out = w.run(who, &["devices", "--json"]);
        let list = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        (list, out)
    };
    let (list, out) = devices("alice");
    assert!(out.status.success());
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["certified"], true);

    // Threat 3: the server lists, for alice, a device it made up (here: bob's own, relabelled),
    // and hands it out in claims.
    let db = rusqlite::Connection::open(w.data().join("missive.db")).expect("db");
    db.execute(
        "INSERT INTO devices (device_id, address, certificate, token_hash, created_at, listed) \
         SELECT '00112233445566778899aabbccddeeff', 'alice@example.org', certificate, token_hash, \
         0, 1 FROM devices WHERE address = 'bob@example.org'",
        [],
    )
    .expect("inject");
    let (list, out) = devices("alice");
    assert_eq!(out.status.code(), Some(3), "an alert");
    assert!(String::from_utf8_lossy(&out.stderr).contains("uncertified_device"));
    let rogue: Vec<&Value> = list.iter().filter(|d| d["certified"] == false).collect();
    assert_eq!(rogue.len(), 1);
    assert_eq!(rogue[0]["id"], "00112233445566778899aabbccddeeff");
    // And bob never encrypts to it.
    let out = w.run("bob", &["dm", "alice@example.org", "hello?"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forged_key_package")
            || String::from_utf8_lossy(&out.stderr).contains("no key package")
    );
}

#[test]
fn errors_are_one_line_and_nonzero() {
    let w = World::new();
    w.register("alice");
    for args in [
        vec!["send", "0011", "x"],
        vec!["history", "nope"],
        vec!["dm", "nobody@example.org", "x"],
        vec!["group", "add", "00ff", "bob@example.org"],
    ] {
        let out = w.run("alice", &args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let out = w.run("nobody", &["sync"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("register"));
}

#[test]
fn transparency_shows_the_trusted_head_and_an_audit_catches_a_rewritten_entry() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    w.ok("bob", &["dm", "alice@example.org", "hello"]);
    let head: Value =
        serde_json::from_str(&w.ok("bob", &["transparency", "--json"])).expect("json");
    assert_eq!(head["domain"], "example.org");
    assert!(head["size"].as_u64().expect("size") >= 2, "{head}");
    assert_eq!(head["root"].as_str().expect("root").len(), 64);

    let first: Value =
        serde_json::from_str(&w.ok("bob", &["transparency", "--audit", "--json"])).expect("json");
    assert_eq!(first["previous"], 0);
    let entries = first["entries"].as_u64().expect("entries");
    let again: Value =
        serde_json::from_str(&w.ok("bob", &["transparency", "--audit", "--json"])).expect("json");
    assert_eq!(again["previous"], entries);

    // The server rewrites alice's first entry.
    let db = rusqlite::Connection::open(w.data().join("missive.db")).expect("db");
    let mut leaf: Vec<u8> = db
        .query_row("SELECT leaf FROM kt_log WHERE idx = 0", [], |r| r.get(0))
        .expect("the first entry");
    let last = leaf.len() - 1;
    leaf[last] ^= 1;
    db.execute("UPDATE kt_log SET leaf = ?1 WHERE idx = 0", [leaf])
        .expect("rewrite");
    let out = w.run("bob", &["transparency", "--audit"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("transparency_failed"), "{stderr}");
    let kept = w.ok("bob", &["alerts"]);
    assert_eq!(kept.matches("transparency_failed").count(), 1, "{kept}");
}
