//! Project automation: `cargo xtask ci` runs what CI runs; `cargo xtask test` only the tests.

use std::process::Command;

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask <ci|test|wasm>
  ci    formatting, clippy -D warnings, the wasm32 check of missive-core, all tests
  test  all tests (cargo nextest when installed, else cargo test)
  wasm  cargo check of missive-core for wasm32-unknown-unknown";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    match task.as_str() {
        "ci" => {
            run("cargo", &["fmt", "--all", "--", "--check"])?;
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
            )?;
            wasm()?;
            test()
        }
        "test" => test(),
        "wasm" => wasm(),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown task {task:?}")
        }
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

fn wasm() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if !String::from_utf8_lossy(&installed.stdout).contains("wasm32-unknown-unknown") {
        run("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
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
    )
}
