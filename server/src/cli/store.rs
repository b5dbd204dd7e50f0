//! `signage store copy --from A --to B`: moves what a store holds, the proof-of-play
//! ledger included, from a redb data directory into an empty PostgreSQL database or back
//! (see `store::dump`). Run it with no server using either store.

use std::process::ExitCode;

use clap::Subcommand;

use crate::store::dump::{copy, End};
use crate::store::OpenMode;

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Copies the catalogue, change log, documents, planned counts, keys, broker logins,
    /// users, sessions, settings, renditions, media and the proof-of-play ledger (every
    /// signed batch, verified again) into an empty store. A ledger archived in part is
    /// refused.
    Copy {
        /// A data directory or a postgres:// URL to copy from.
        #[arg(long)]
        from: String,
        /// An empty data directory (created if absent) or PostgreSQL database (its schema
        /// is created) to copy into.
        #[arg(long)]
        to: String,
    },
}

impl StoreCommand {
    pub(super) fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            StoreCommand::Copy { from, to } => {
                if same_store(&from, &to) {
                    anyhow::bail!("--from and --to name the same store ({from}): nothing to copy");
                }
                // The PostgreSQL end's files in transit (media on their way to redb).
                let transit = tempfile::tempdir()?;
                let source = End::open(&from, transit.path(), OpenMode::Existing)?;
                let target = End::open(&to, transit.path(), OpenMode::Create)?;
                let copied = copy(&source, &target)?;
                println!(
                    "copied {} entities, {} revisions, {} documents, {} planned-count parts, \
                     {} users, {} media files and {} proof-of-play batches ({} records) from \
                     {from} to {to}",
                    copied.entities,
                    copied.revisions,
                    copied.documents,
                    copied.planned_parts,
                    copied.users,
                    copied.media,
                    copied.batches,
                    copied.records
                );
                if matches!(source, End::Redb(_)) {
                    println!(
                        "not copied: the data directory's files (server key, tokens, TLS) and \
                         ledger archive files, which stay in {from}"
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Whether two locations are one store: equal URLs, or directories that resolve to the
/// same path.
fn same_store(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_store_is_not_copied_onto_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let dotted = format!("{path}/.");
        assert!(super::same_store(&path, &dotted));
        assert!(super::same_store("postgres://a@h/db", "postgres://a@h/db"));
        assert!(!super::same_store(&path, "postgres://a@h/db"));
        let other = tempfile::tempdir().unwrap();
        assert!(!super::same_store(&path, other.path().to_str().unwrap()));
    }
}
