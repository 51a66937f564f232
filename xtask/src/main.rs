//! Project automation: `cargo xtask ci` runs what CI runs; `cargo xtask test` only the tests.

use std::process::Command;

use anyhow::{bail, Context};

const USAGE: &str =
    "usage: cargo xtask <ci|test|web|browser-test|wasm|deny|api-fuzz|fuzz [SECONDS]|soak [ROUNDS]>
  ci        formatting, clippy -D warnings, cargo-deny, the wasm32 check of missive-core,
            all tests, the browser tests, a bounded api-fuzz run, a 60-round soak and a
            bounded fuzz run
  web       builds the web app into web/dist: the engine (crates/web) for wasm32, its
            JavaScript bindings (wasm-bindgen-cli, installed at the pinned version if
            missing), the pages of web/app and the bundle of web/src (esbuild; `npm ci`
            first when web/node_modules is missing or older than the lock file);
            `--release` for release builds
  browser-test
            the web app's tests in headless Chromium against a real server (web/tests);
            installs what they need if missing: Debian's chromium, web/node_modules
  web-bench the web app's figures on release builds: bundle size (gzip), cold load, browser to
            browser message latency, a large file through the browser and the CLI
            and MLS in large groups in the browser (`--messages N --loads N --file-mib N
            --groups N,N`)
  deny      cargo-deny (installed if missing): licences, bans, sources as set in deny.toml,
            then advisories when a RustSec database is within reach (github.com, a copy
            fetched earlier, or MISSIVE_ADVISORY_DB=URL_OR_PATH naming a mirror)
  fuzz      every cargo-fuzz target of fuzz/ for SECONDS each (default 20); cargo-fuzz is
            installed if missing, and RUSTC_BOOTSTRAP=1 lets it use the stable toolchain
  soak      missive-bench --soak ROUNDS (default 200; release build): sends, device links,
            revocations and clients killed mid-commit at random; fails unless every device
            read every message
  test      all tests (cargo nextest when installed, else cargo test)
  wasm      cargo check of missive-core (without its native features) and clippy of the
            browser engine (crates/web), for wasm32-unknown-unknown
  api-fuzz  schemathesis (installed from PyPI into target/) against a live server's
            /openapi.json: no 5xx, every answer as documented (MISSIVE_API_FUZZ_EXAMPLES
            per operation, default 50)";

/// The schemathesis release the API fuzzing is pinned to.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    // The CLI's calls encode and decode with the system's libopus: every task builds the CLI
    // but the browser engine's.
    if !matches!(task.as_str(), "wasm" | "deny" | "") {
        ensure_libopus()?;
    }
    match task.as_str() {
        "ci" => {
            let mut timer = Phases::default();
            timer.phase("fmt", || run("cargo", &["fmt", "--all", "--", "--check"]))?;
            timer.phase("clippy", || {
                run(
                    "cargo",
                    &[
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--",
                        "-D",
                        "warnings",
                    ],
                )
            })?;
            timer.phase("deny", deny)?;
            timer.phase("wasm", wasm)?;
            timer.phase("test", test)?;
            // The test run just built the server and CLI binaries from these sources.
            timer.phase("browser-test", browser_test)?;
            timer.phase("api-fuzz", || api_fuzz(false))?;
            timer.phase("soak", || soak("60", false))?;
            timer.phase("fuzz", || fuzz(20))?;
            timer.report();
            Ok(())
        }
        "fuzz" => {
            let seconds = match std::env::args().nth(2) {
                Some(s) => s.parse().context("fuzz SECONDS must be a number")?,
                None => 20,
            };
            fuzz(seconds)
        }
        "test" => test(),
        "run" => run_server(std::env::args().skip(2).collect()),
        "web" => web(
            std::env::args().nth(2).as_deref() == Some("--release"),
            false,
        ),
        "browser-test" => {
            run(
                "cargo",
                &["build", "-p", "missive-server", "-p", "missive-cli"],
            )?;
            browser_test()
        }
        "soak" => {
            let rounds = std::env::args().nth(2).unwrap_or_else(|| "200".into());
            rounds
                .parse::<usize>()
                .context("soak ROUNDS must be a number")?;
            soak(&rounds, true)
        }
        "web-bench" => web_bench(&std::env::args().skip(2).collect::<Vec<_>>()),
        "deny" => deny(),
        "wasm" => wasm(),
        "api-fuzz" => api_fuzz(true),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown task {task:?}")
        }
    }
}

/// How long each phase of `ci` took, printed at the end (and as far as it got on failure),
/// so that a slow CI run says where its time went.
#[derive(Default)]
struct Phases(Vec<(&'static str, std::time::Duration)>);

impl Phases {
    fn phase(
        &mut self,
        name: &'static str,
        work: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let result = work();
        self.0.push((name, started.elapsed()));
        if result.is_err() {
            self.report();
        }
        result
    }

    fn report(&self) {
        let total: std::time::Duration = self.0.iter().map(|(_, d)| *d).sum();
        eprintln!("ci phases:");
        for (name, took) in &self.0 {
            eprintln!("  {name:<13} {:>6.0} s", took.as_secs_f64());
        }
        eprintln!("  {:<13} {:>6.0} s", "total", total.as_secs_f64());
    }
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn test() -> anyhow::Result<()> {
    if succeeds("cargo", &["nextest", "--version"]) {
        // nextest does not run doctests: run them first, so that the summary of all the tests
        // is what a run ends with.
        run("cargo", &["test", "--workspace", "--doc"])?;
        run(
            "cargo",
            &["nextest", "run", "--workspace", "--no-fail-fast"],
        )
    } else {
        run("cargo", &["test", "--workspace"])
    }
}

/// The wasm-bindgen-cli release matching the `wasm-bindgen` crate crates/web pins (they
/// must be the same version).
const WASM_BINDGEN: &str = "0.2.130";

fn workspace_root() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_owned())
}

fn target_dir(root: &std::path::Path) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&installed.stdout).contains("wasm32-unknown-unknown") {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    Ok(())
}

/// Builds the web app into `web/dist`: `index.html` and the other pages of `web/app`, and
/// `pkg/` with the engine compiled to WebAssembly and its JavaScript bindings; `bench` adds the
/// engine's benchmarks (`benchGroup`).
fn web(release: bool, bench: bool) -> anyhow::Result<()> {
    let root = workspace_root()?;
    ensure_wasm_target()?;
    let version = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if version != format!("wasm-bindgen {WASM_BINDGEN}") {
        // Not --locked: its lock file names a webpki-roots release no longer on crates.io.
        run(
            "cargo",
            &["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN],
        )?;
    }
    let mut build = vec![
        "build",
        "-p",
        "missive-web",
        "--target",
        "wasm32-unknown-unknown",
    ];
    if release {
        build.extend(["--profile", "wasm-release"]);
    }
    if bench {
        build.extend(["--features", "bench"]);
    }
    run("cargo", &build)?;
    let profile = if release { "wasm-release" } else { "debug" };
    let wasm = target_dir(&root)
        .join("wasm32-unknown-unknown")
        .join(profile)
        .join("missive_web.wasm");
    let dist = root.join("web").join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("emptying {}", dist.display()))?;
    }
    run(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--out-dir",
            &dist.join("pkg").to_string_lossy(),
            &wasm.to_string_lossy(),
        ],
    )?;
    let web_dir = root.join("web");
    npm_ci(&web_dir)?;
    if release {
        optimise_wasm(&web_dir, &dist.join("pkg").join("missive_web_bg.wasm"))?;
    }
    for entry in std::fs::read_dir(root.join("web").join("app"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), dist.join(entry.file_name()))
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    let mut bundle = vec!["build.mjs"];
    if release {
        bundle.push("--release");
    }
    node(&web_dir, &bundle)?;
    eprintln!("web app built in {}", dist.display());
    Ok(())
}

/// Builds everything a person needs (release server and CLI, release web app) and runs the
/// server with `args` (or the README's defaults), serving the web app too.
fn run_server(args: Vec<String>) -> anyhow::Result<()> {
    let root = workspace_root()?;
    web(true, false)?;
    build_release_server()?;
    let args = if args.is_empty() {
        [
            "--data",
            "./missive-data",
            "serve",
            "--domain",
            "example.org",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args
    };
    let server = target_dir(&root).join("release").join("missive-server");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&server.to_string_lossy(), &args)
}

/// The npm packages of `web/` as its lock file names them, installed unless present and
/// newer than the lock file.
fn npm_ci(web_dir: &std::path::Path) -> anyhow::Result<()> {
    let lock = web_dir.join("package-lock.json");
    let installed = web_dir.join("node_modules").join(".package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
        (Ok(l), Ok(i)) => i.modified()? >= l.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(web_dir)
        .status()
        .context("running npm (Node.js and npm build the web app)")?;
    if !status.success() {
        bail!("npm ci in web/ failed ({status})");
    }
    Ok(())
}

/// Runs `node ARGS` in `dir`.
fn node(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ (in {}) node {}", dir.display(), args.join(" "));
    let status = Command::new("node")
        .args(args)
        .current_dir(dir)
        .status()
        .context("running node")?;
    if !status.success() {
        bail!("node {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The browser tests of `web/tests` (Node's test runner) against the debug server and CLI,
/// after building the web app and checking its types; installs Debian's chromium, coturn and
/// iptables if missing.
/// Screenshots of the app's screens go to `target/web-screenshots`.
fn browser_test() -> anyhow::Result<()> {
    let root = workspace_root()?;
    web(false, false)?;
    // The binaries the tests drive (built by the tests before; at once when they are), and
    // the hostile server they play the threats with.
    run(
        "cargo",
        &[
            "build",
            "-p",
            "missive-server",
            "-p",
            "missive-cli",
            "--bins",
            "--example",
            "hostile",
        ],
    )?;
    ensure_chromium()?;
    ensure_coturn()?;
    ensure_iptables()?;
    let web_dir = root.join("web");
    // The app's TypeScript against the engine's generated types.
    node(
        &web_dir,
        &["node_modules/typescript/bin/tsc", "--project", "."],
    )?;
    std::fs::create_dir_all(target_dir(&root).join("web-screenshots"))?;
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .arg(web_dir.join("tests"))
        .status()
        .context("running node")?;
    if !status.success() {
        bail!("the browser tests failed ({status})");
    }
    Ok(())
}

/// `wasm-opt -Oz` over the engine, in place: binaryen from npm (pinned in web/package.json;
/// Debian's release is too old for the reference types Rust emits and breaks the module).
fn optimise_wasm(web_dir: &std::path::Path, wasm: &std::path::Path) -> anyhow::Result<()> {
    let before = std::fs::metadata(wasm)?.len();
    let path = wasm.to_string_lossy();
    node(
        web_dir,
        &[
            "node_modules/binaryen/bin/wasm-opt",
            "-Oz",
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
            &path,
            "-o",
            &path,
        ],
    )?;
    let after = std::fs::metadata(wasm)?.len();
    eprintln!("wasm-opt: {before} → {after} bytes");
    Ok(())
}

/// A Debian package, installed by apt-get (non-interactive).
fn apt_install(package: &str) -> anyhow::Result<()> {
    run("apt-get", &["update", "-qq"])?;
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("installing Debian's {package} failed ({status})");
    }
    Ok(())
}

/// The release server and CLI; build the app first (the release server embeds web/dist).
fn build_release_server() -> anyhow::Result<()> {
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "missive-server",
            "-p",
            "missive-cli",
        ],
    )
}

/// Debian's libopus-dev (the Opus codec the CLI's calls link), installed unless pkg-config
/// finds Opus already.
fn ensure_libopus() -> anyhow::Result<()> {
    let found = Command::new("pkg-config")
        .args(["--exists", "opus"])
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    apt_install("libopus-dev")?;
    if !std::path::Path::new("/usr/bin/pkg-config").exists() {
        apt_install("pkg-config")?;
    }
    Ok(())
}

/// Debian's coturn (the TURN server the call tests relay through), installed unless present.
fn ensure_coturn() -> anyhow::Result<()> {
    if std::path::Path::new("/usr/bin/turnserver").exists() {
        return Ok(());
    }
    apt_install("coturn")
}

/// Debian's iptables (a call test kills the app's network path with it), installed unless
/// present.
fn ensure_iptables() -> anyhow::Result<()> {
    if std::path::Path::new("/usr/sbin/iptables").exists() {
        return Ok(());
    }
    apt_install("iptables")
}

/// Debian's Chromium, installed unless present (or named by `CHROMIUM`).
fn ensure_chromium() -> anyhow::Result<()> {
    if std::env::var_os("CHROMIUM").is_some() || std::path::Path::new("/usr/bin/chromium").exists()
    {
        return Ok(());
    }
    apt_install("chromium")
}

/// Copies the directory `from` (files and subdirectories) to `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// The web app's benchmarks (`web/bench/web-bench.mjs`) on release builds; `args` go to it.
fn web_bench(args: &[String]) -> anyhow::Result<()> {
    let root = workspace_root()?;
    // The app as users get it, kept aside for its size; then the build with the benchmark code.
    web(true, false)?;
    let app = target_dir(&root).join("web-bench-app");
    if app.exists() {
        std::fs::remove_dir_all(&app)?;
    }
    copy_dir(&root.join("web").join("dist"), &app)?;
    web(true, true)?;
    build_release_server()?;
    ensure_chromium()?;
    let status = Command::new("node")
        .arg(root.join("web").join("bench").join("web-bench.mjs"))
        .args(args)
        .env("MISSIVE_PROFILE", "release")
        .env("MISSIVE_APP_DIST", &app)
        .status()
        .context("running node")?;
    if !status.success() {
        bail!("the web benchmarks failed ({status})");
    }
    Ok(())
}

/// `missive-bench --soak ROUNDS` against a server it starts (release or dev build; our crates
/// are optimized in dev builds too).
fn soak(rounds: &str, release: bool) -> anyhow::Result<()> {
    let mut build = vec!["build", "-p", "missive-server", "-p", "missive-bench"];
    if release {
        build.push("--release");
    }
    run("cargo", &build)?;
    let profile = if release { "release" } else { "debug" };
    let bench = target_dir(&workspace_root()?)
        .join(profile)
        .join("missive-bench");
    run(&bench.to_string_lossy(), &["--soak", rounds])
}

/// Where cargo-deny fetches the RustSec advisory database from (as named in its config).
const ADVISORY_DB: &str = "https://github.com/RustSec/advisory-db";

/// How long to wait for github.com to answer before taking it as out of reach.
const ADVISORY_PROBE: std::time::Duration = std::time::Duration::from_secs(20);

/// cargo-deny over the whole workspace: licences, bans and sources always (they need nothing
/// from the network), then advisories against the first RustSec database within reach:
/// `MISSIVE_ADVISORY_DB` (a mirror's URL or path; git fetches from it instead of github.com,
/// as deny.toml has cargo-deny fetch with the git command line, which honours
/// `url.<base>.insteadOf`), github.com itself, or the copy an earlier run fetched. With none,
/// one line says so and the check goes on: a machine that reaches only package registries
/// still runs every other check.
fn deny() -> anyhow::Result<()> {
    if !succeeds("cargo", &["deny", "--version"]) {
        run("cargo", &["install", "cargo-deny", "--locked"])?;
    }
    run("cargo", &["deny", "check", "licenses", "bans", "sources"])?;

    let mut command = Command::new("cargo");
    command.arg("deny");
    if let Ok(mirror) = std::env::var("MISSIVE_ADVISORY_DB") {
        let base = if mirror.contains("://") {
            mirror
        } else {
            format!("file://{mirror}")
        };
        eprintln!("(advisory database from {base})");
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", format!("url.{base}.insteadOf"))
            .env("GIT_CONFIG_VALUE_0", ADVISORY_DB);
    } else if !answers(ADVISORY_DB) {
        match fetched_advisory_db() {
            Some(dir) => {
                eprintln!(
                    "(github.com is out of reach: advisories are checked against the copy \
                     fetched earlier in {})",
                    dir.display()
                );
                command.arg("--offline");
            }
            None => {
                eprintln!(
                    "advisories: not checked: the RustSec database is out of reach (github.com \
                     does not answer; set MISSIVE_ADVISORY_DB=URL_OR_PATH to a mirror of it)"
                );
                return Ok(());
            }
        }
    }
    command.args(["check", "advisories"]);
    eprintln!("$ cargo deny check advisories");
    let status = command.status().context("running cargo deny")?;
    if !status.success() {
        bail!("cargo deny check advisories failed ({status})");
    }
    Ok(())
}

/// Whether the git repository at `url` answers within [`ADVISORY_PROBE`].
fn answers(url: &str) -> bool {
    let child = Command::new("git")
        .args(["ls-remote", "--heads", url])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let deadline = std::time::Instant::now() + ADVISORY_PROBE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The advisory database an earlier cargo-deny run cloned into its default place
/// (`$CARGO_HOME/advisory-dbs`), if there is one.
fn fetched_advisory_db() -> Option<std::path::PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))?;
    let dbs = cargo_home.join("advisory-dbs");
    std::fs::read_dir(&dbs)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.path().join("crates").is_dir())
        .map(|e| e.path())
}

fn wasm() -> anyhow::Result<()> {
    ensure_wasm_target()?;
    run(
        "cargo",
        &[
            "check",
            "-p",
            "missive-core",
            "--no-default-features",
            "--target",
            "wasm32-unknown-unknown",
        ],
    )?;
    // The browser engine exists only on wasm32: linted there, warnings refused.
    run(
        "cargo",
        &[
            "clippy",
            "-p",
            "missive-web",
            "--all-features",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ],
    )
}

/// schemathesis against a live debug server (see `xtask/scripts/schemathesis.py`); `build`
/// builds the binaries first.
fn api_fuzz(build: bool) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let venv = target.join("schemathesis-venv");
    let python = venv.join("bin").join("python");
    if !venv.join("bin").join("schemathesis").exists() {
        run("python3", &["-m", "venv", &venv.to_string_lossy()])?;
        run(
            &venv.join("bin").join("pip").to_string_lossy(),
            &["install", "--quiet", SCHEMATHESIS],
        )?;
    }
    if build {
        run(
            "cargo",
            &["build", "-p", "missive-server", "-p", "missive-cli"],
        )?;
    }
    let examples = std::env::var("MISSIVE_API_FUZZ_EXAMPLES").unwrap_or_else(|_| "50".to_owned());
    run(
        &python.to_string_lossy(),
        &[
            &root
                .join("xtask")
                .join("scripts")
                .join("schemathesis.py")
                .to_string_lossy(),
            &target.to_string_lossy(),
            &examples,
        ],
    )
}

/// The cargo-fuzz targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: &[&str] = &["certificate", "mls_public", "api_bodies", "commit"];

/// Runs every fuzz target for `seconds`; fails on any crash (the input is kept in
/// `fuzz/artifacts/TARGET/`).
fn fuzz(seconds: u64) -> anyhow::Result<()> {
    if !succeeds("cargo", &["fuzz", "--version"]) {
        run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .join("fuzz");
    let time = format!("-max_total_time={seconds}");
    for target in FUZZ_TARGETS {
        eprintln!("$ cargo fuzz run {target} -- {time}");
        let status = Command::new("cargo")
            .current_dir(&root)
            // cargo-fuzz passes nightly-only flags (sanitizers); this lets stable take them.
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target, "--", &time])
            .status()
            .context("running cargo fuzz")?;
        if !status.success() {
            bail!("fuzz target {target} failed ({status}); see fuzz/artifacts/{target}/");
        }
    }
    Ok(())
}
