//! Embeds the Beijing scenario (scenario.json and its media) in the binary, so `demo` and
//! `bench plan` work wherever the binary is installed (see `src/builtin.rs`).

use std::path::Path;

fn main() {
    // Read when the script runs, not baked in when it was compiled: a build directory
    // shared by two checkouts (a worktree, a CI cache) reuses the compiled script.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../scenarios/beijing-role-models");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    collect(&dir, &dir, &mut files);
    files.sort();
    let mut out = String::from("/// The Beijing scenario's files: path inside it, content.\npub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        println!("cargo:rerun-if-changed={path}");
        out.push_str(&format!("    ({name:?}, include_bytes!({path:?})),\n"));
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("beijing.rs");
    std::fs::write(target, out).expect("write beijing.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, files);
        } else {
            let name = path.strip_prefix(root).expect("inside the root");
            let name = name.to_str().expect("UTF-8 file names").replace('\\', "/");
            let abs = path.canonicalize().expect("canonical path");
            files.push((name, abs.to_str().expect("UTF-8 path").to_owned()));
        }
    }
}
