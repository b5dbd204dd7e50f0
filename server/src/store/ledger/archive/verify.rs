//! The archive audit, for both backends: re-verifies every batch in the archive files of a
//! directory against the screens' keys, and each chain's continuity from its genesis
//! through the archive to the live ledger's archive marker (whose successor the live audit
//! links to). The store answers what it holds through [`ArchivedLedger`], from one
//! consistent state.
//!
//! A batch found both in the archive and live (a run that crashed after writing its file
//! and before deleting) is counted once. A batch beyond a chain's marker that the live
//! ledger does not hold, a missing or extra batch, a damaged file or a signature that does
//! not verify is a problem naming the file and the batch. Read-only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use playlists::wire::pop::{batch_hash, genesis_hash, BATCH_KIND};
use playlists::wire::signed::open_envelope;
use playlists::wire::{PlayRecord, PopBatch};

use super::super::reader::payload_of;
use super::super::{epoch_name, AuditProblem, HashBytes, KeysOf, LedgerError, ProblemKind};
use super::{files_in, read_file, stored_hash, Marker};

/// What the archive audit asks of the live ledger.
pub(crate) trait ArchivedLedger {
    /// The archive marker of chain `(screen, epoch)`, if any of its batches were archived.
    fn marker(&self, screen: &str, epoch: &str) -> Result<Option<Marker>, LedgerError>;
    /// Whether batch `(batch_seq, hash)` of the chain is live.
    fn is_live(
        &self,
        screen: &str,
        epoch: &str,
        batch_seq: u64,
        hash: &HashBytes,
    ) -> Result<bool, LedgerError>;
    /// Every chain with an archive marker: `(screen, epoch, the marker's batch_seq)`.
    fn archived_chains(&self) -> Result<Vec<(String, String, u64)>, LedgerError>;
}

/// What the archive audit found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveReport {
    pub files: u64,
    /// Distinct batches in the archive.
    pub batches: u64,
    /// Distinct records (screen, epoch, seq) they carry.
    pub records: u64,
    /// Of those batches, the ones still live too (an interrupted run; counted once).
    pub also_live: u64,
    pub problems: Vec<AuditProblem>,
}

/// One archived batch: where it is and what it says.
struct Found {
    file: PathBuf,
    hash: HashBytes,
    prev_hash: String,
    records: Vec<PlayRecord>,
}

type Chain = (String, String);

/// Also calls `plays` with each archived record once (from a batch whose signature verified),
/// by screen, epoch and seq, for the caller's checks against the plan.
pub(crate) fn verify_archive(
    ledger: &dyn ArchivedLedger,
    dir: &Path,
    key_of: KeysOf<'_>,
    plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<ArchiveReport, LedgerError> {
    let files = files_in(dir)?;
    let mut report = ArchiveReport {
        files: files.len() as u64,
        ..ArchiveReport::default()
    };
    let mut chains: BTreeMap<Chain, BTreeMap<u64, Vec<Found>>> = BTreeMap::new();
    let mut rings: HashMap<String, Vec<VerifyingKey>> = HashMap::new();
    for file in &files {
        let name = file.display().to_string();
        let envelopes = match read_file(file) {
            Ok(e) => e,
            Err(why) => {
                report.problems.push(problem(
                    "",
                    ProblemKind::ChainBreak,
                    format!("archive file {name} {why}"),
                ));
                continue;
            }
        };
        for (i, raw) in envelopes.iter().enumerate() {
            let Some((payload, batch)) = payload_of(raw)
                .and_then(|p| serde_json::from_str::<PopBatch>(&p).ok().map(|b| (p, b)))
            else {
                report.problems.push(problem(
                    "",
                    ProblemKind::ChainBreak,
                    format!(
                        "archive file {name}: entry {} is not a readable batch",
                        i + 1
                    ),
                ));
                continue;
            };
            let ring = rings
                .entry(batch.screen_id.clone())
                .or_insert_with(|| key_of(&batch.screen_id));
            let verified = ring
                .iter()
                .any(|k| open_envelope(raw, BATCH_KIND, k, usize::MAX).is_ok());
            if !verified {
                report.problems.push(problem(
                    &batch.screen_id,
                    ProblemKind::BadSignature,
                    format!(
                        "archive file {name}: batch {} of {} does not verify with any of the screen's keys (altered or forged)",
                        batch.batch_seq,
                        epoch_name(&batch.epoch)
                    ),
                ));
                continue;
            }
            let hash = stored_hash(batch_hash(&payload).as_str());
            let versions = chains
                .entry((batch.screen_id.clone(), batch.epoch.clone()))
                .or_default()
                .entry(batch.batch_seq)
                .or_default();
            if !versions.iter().any(|f| f.hash == hash) {
                versions.push(Found {
                    file: file.clone(),
                    hash,
                    prev_hash: batch.prev_hash,
                    records: batch.records,
                });
            }
        }
    }
    for ((screen, epoch), batches) in &chains {
        let marker = ledger.marker(screen, epoch)?;
        check_chain(
            &mut report,
            screen,
            epoch,
            batches,
            marker.map(|m| (m.batch_seq, m.hash)),
        );
        for (batch_seq, versions) in batches {
            report.batches += versions.len() as u64;
            for f in versions {
                if ledger.is_live(screen, epoch, *batch_seq, &f.hash)? {
                    report.also_live += 1;
                } else if marker.is_none_or(|m| *batch_seq > m.batch_seq) {
                    report.problems.push(problem(
                        screen,
                        ProblemKind::ChainBreak,
                        format!(
                            "archive file {}: batch {batch_seq} of {} is beyond what the ledger archived and not in the live ledger",
                            f.file.display(),
                            epoch_name(epoch)
                        ),
                    ));
                }
            }
        }
        report.records += exactly_once(&mut report.problems, screen, epoch, batches, plays)?;
    }
    // Chains the ledger says were archived but no file holds.
    for (screen, epoch, batch_seq) in ledger.archived_chains()? {
        if !chains.contains_key(&(screen.clone(), epoch.clone())) {
            report.problems.push(problem(
                &screen,
                ProblemKind::MissingRecord,
                format!(
                    "{}: the ledger archived batches up to {batch_seq} but no archive file in {} holds any of them",
                    epoch_name(&epoch),
                    dir.display()
                ),
            ));
        }
    }
    Ok(report)
}

/// Batch 1 from the genesis hash, each next one linking to the one before, up to and through
/// the ledger's marker (`(batch_seq, hash)` of the last batch it archived).
fn check_chain(
    report: &mut ArchiveReport,
    screen: &str,
    epoch: &str,
    batches: &BTreeMap<u64, Vec<Found>>,
    marker: Option<(u64, HashBytes)>,
) {
    let mut push = |detail: String| {
        report.problems.push(problem(
            screen,
            ProblemKind::ChainBreak,
            format!("{}: {detail}", epoch_name(epoch)),
        ))
    };
    let mut expected: (u64, String) = (1, genesis_hash());
    for (&batch_seq, versions) in batches {
        let f = &versions[0];
        let file = f.file.display();
        if versions.len() > 1 {
            push(format!(
                "archive file {file}: batch {batch_seq} is archived in more than one version (the chain forks)"
            ));
        }
        if batch_seq != expected.0 {
            push(format!(
                "archive file {file}: batch {batch_seq} follows batch {}: batches {}..={} are missing from the archive",
                expected.0 - 1,
                expected.0,
                batch_seq - 1
            ));
        } else if f.prev_hash != expected.1 {
            push(format!(
                "archive file {file}: batch {batch_seq} names previous hash {} but the batch before it hashes to {}",
                f.prev_hash, expected.1
            ));
        }
        expected = (batch_seq + 1, hex::encode(f.hash));
    }
    if let Some((m_seq, m_hash)) = marker {
        let held = batches
            .get(&m_seq)
            .is_some_and(|v| v.iter().any(|f| f.hash == m_hash));
        if !held {
            push(format!(
                "the ledger archived batches up to batch {m_seq} (hash {}), which no archive file holds",
                hex::encode(m_hash)
            ));
        }
    }
}

/// Counts each record (seq) of a chain once, and reports a seq carried with different
/// content by two archived batches.
fn exactly_once(
    problems: &mut Vec<AuditProblem>,
    screen: &str,
    epoch: &str,
    batches: &BTreeMap<u64, Vec<Found>>,
    plays: &mut dyn FnMut(&PlayRecord) -> Result<(), LedgerError>,
) -> Result<u64, LedgerError> {
    let mut seen: BTreeMap<u64, (&PlayRecord, u64)> = BTreeMap::new();
    for (&batch_seq, versions) in batches {
        for f in versions {
            for r in &f.records {
                match seen.get(&r.seq) {
                    None => {
                        seen.insert(r.seq, (r, batch_seq));
                    }
                    Some((held, from)) if *held != r => problems.push(problem(
                        screen,
                        ProblemKind::SeqConflict,
                        format!(
                            "{}: archive file {}: batch {batch_seq} carries seq {} with other content than batch {from}",
                            epoch_name(epoch),
                            f.file.display(),
                            r.seq
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    for (r, _) in seen.values() {
        plays(r)?;
    }
    Ok(seen.len() as u64)
}

fn problem(screen: &str, kind: ProblemKind, detail: String) -> AuditProblem {
    AuditProblem {
        screen_id: screen.to_owned(),
        kind,
        detail,
    }
}
