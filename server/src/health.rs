//! What `/ready` checks of the store beside reading it: that its data directory takes a
//! write (a full disk, a read-only remount or a lost mount all show here before a
//! proof-of-play batch fails to commit).

use std::io::Write;
use std::path::Path;

/// Writes, syncs and removes a small file in `dir`.
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let mut f = tempfile::Builder::new()
        .prefix(".ready-probe-")
        .tempfile_in(dir)?;
    f.write_all(b"ready")?;
    f.as_file().sync_all()?;
    f.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_takes_a_write_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        probe_writable(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(probe_writable(&dir.path().join("gone")).is_err());
    }
}
