//! The Beijing scenario built into the binary (`build.rs`), for `demo`, `bench plan` and
//! `scenario generate` wherever the binary is installed: a copy installed beside it
//! (`scenarios/beijing-role-models/` next to the binary, or `../share/signage/…`) when
//! there is one, else the embedded files, written once into a folder of the temporary
//! directory named after their content.

use std::path::{Path, PathBuf};

use sha2::Digest;

include!(concat!(env!("OUT_DIR"), "/beijing.rs"));

/// The scenario's folder name.
pub const NAME: &str = "beijing-role-models";

/// A folder holding the Beijing scenario.
pub fn beijing() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::current_exe().ok().and_then(|exe| beside(&exe)) {
        return Ok(dir);
    }
    extract(&std::env::temp_dir())
}

/// An installed copy next to the binary `exe`.
fn beside(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    [
        bin.join("scenarios").join(NAME),
        bin.join("../share/signage/scenarios").join(NAME),
    ]
    .into_iter()
    .find(|d| d.join("scenario.json").is_file())
}

/// Writes the embedded files under `root` (once: a complete copy is reused) and returns
/// their folder.
pub fn extract(root: &Path) -> anyhow::Result<PathBuf> {
    let mut hash = sha2::Sha256::new();
    for (name, bytes) in FILES {
        hash.update(name.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    let id = hex::encode(&hash.finalize()[..8]);
    let dir = root.join(format!("signage-{NAME}-{id}"));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    // Written aside, then renamed: a reader never sees half a scenario.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("signage-{NAME}-"))
        .tempdir_in(root)?;
    for (name, bytes) in FILES {
        let path = tmp.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    std::fs::write(tmp.path().join(".complete"), b"")?;
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process got there first.
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::ensure!(
            dir.join(".complete").is_file(),
            "cannot write the built-in scenario into {}",
            dir.display()
        );
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_copy_is_the_repository_scenario() {
        let root = tempfile::tempdir().unwrap();
        let dir = extract(root.path()).unwrap();
        assert_eq!(extract(root.path()).unwrap(), dir, "reused");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(NAME);
        assert_eq!(
            std::fs::read(dir.join("scenario.json")).unwrap(),
            std::fs::read(shipped.join("scenario.json")).unwrap()
        );
        let media = std::fs::read_dir(shipped.join("media")).unwrap().count();
        assert_eq!(std::fs::read_dir(dir.join("media")).unwrap().count(), media);
        crate::import::load(&dir).expect("the extracted scenario loads");
    }
}
