//! A release build of the server carries the web app: every file of `web/dist` (built by
//! `cargo xtask web --release`, which `cargo xtask run` runs first) is embedded in the binary,
//! so one file is the whole server. Debug builds embed nothing (the tests serve `web/dist`
//! with `--web`, and rebuilding the app does not recompile the server).

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("..").join("..").join("web").join("dist");
    let mut files = Vec::new();
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rerun-if-changed={}", dist.display());
        if dist.join("index.html").is_file() {
            collect(&dist, &dist, &mut files);
        }
    }
    files.sort();
    let mut table = String::from("&[\n");
    for (name, path) in &files {
        let _ = writeln!(table, "    ({name:?}, include_bytes!({path:?})),");
    }
    table.push(']');
    std::fs::write(out.join("embedded_web.rs"), table).expect("writing the embedded app's table");
}

/// Every file under `dir`, as (its path relative to `root` with `/`, its absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "map") {
            // Source maps stay out of the binary.
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let absolute = path.canonicalize().unwrap_or(path);
            files.push((name, absolute.to_string_lossy().into_owned()));
        }
    }
}
