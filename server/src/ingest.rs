//! The ingest pipeline of an uploaded file, free of HTTP: probe it, judge a video
//! against the kiosk gate and its loudness against the target, transcode or normalise
//! it when needed, and say what to store with every check's verdict. Synchronous (FFmpeg
//! work): the upload runs it under `spawn_blocking`, reporting its phase to a
//! [`ProgressBoard`] the uploader polls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use media::{LoudnessTarget, Measured, MediaError, TranscodeSpec, VideoGate};
use serde::{Deserialize, Serialize};

use crate::store::{CheckOutcome, MediaCheck};

/// A video whose integrated loudness is this close to the target (in LU) is left as is.
pub const LOUDNESS_TOLERANCE_LU: f64 = 1.0;

/// What to do with a video whose loudness is off the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoudnessAction {
    /// Bring it to the target by a gain while transcoding.
    Normalise,
    /// Store it as it is, with a warning among its checks.
    Warn,
    /// Refuse the upload.
    Refuse,
}

/// How uploads of video are judged and changed (the `[media]` configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPolicy {
    pub gate: VideoGate,
    pub loudness_target: LoudnessTarget,
    pub loudness: LoudnessAction,
    /// What a video or an animation that fails the flash check gets.
    pub flash: crate::media_checks::FlashMode,
    pub limits: media::Limits,
}

impl Default for MediaPolicy {
    /// The default gate, -23 LUFS with a -1 dBTP ceiling, normalised.
    fn default() -> Self {
        MediaPolicy {
            gate: VideoGate::default(),
            loudness_target: LoudnessTarget::default(),
            loudness: LoudnessAction::Normalise,
            flash: crate::media_checks::FlashMode::default(),
            limits: media::Limits::default(),
        }
    }
}

/// Where an upload is, as its uploader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Receiving,
    Probing,
    Checking,
    Transcoding,
    Storing,
    Done,
    Failed,
}

/// Why an upload is refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file is not a creative we can read (corrupt, unknown, over a limit).
    #[error("{0}")]
    Media(#[from] MediaError),
    /// A check refused it, as configured.
    #[error("{check}: {detail}")]
    Refused { check: &'static str, detail: String },
    /// Transcoding into the gate failed.
    #[error("transcode: {0}")]
    Transcode(MediaError),
    #[error("cannot make a working file in {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl IngestError {
    /// The check to blame, for the refusal's `field`.
    pub fn check(&self) -> &'static str {
        match self {
            IngestError::Media(_) | IngestError::Io { .. } => "file",
            IngestError::Refused { check, .. } => check,
            IngestError::Transcode(_) => "transcode",
        }
    }
}

/// What to store for an upload.
#[derive(Debug)]
pub struct Ingested {
    /// The measurement of the file to store (the transcoded one when transcoded).
    pub measured: Measured,
    /// The transcoded file, to store instead of the upload; `None`: store the upload.
    pub transcoded: Option<tempfile::TempPath>,
    pub checks: Vec<MediaCheck>,
    /// A JPEG thumbnail (a video's poster frame) of what is stored; `None` when it could
    /// not be made (the first request for it tries again).
    pub thumbnail: Option<Vec<u8>>,
}

/// Runs the pipeline on the uploaded file at `path`; transcoded files are made in
/// `work_dir` (on the store's disk, so storing them is a rename). `report` hears each
/// phase with the fraction done in it.
///
/// The flash check runs first, on the upload itself (a refusal then costs no
/// transcoding; frames dropped to the gate's rate would only hide flashes), then the
/// gate and loudness; the thumbnail is made of what is stored.
pub fn ingest(
    path: &Path,
    work_dir: &Path,
    policy: &MediaPolicy,
    report: &mut dyn FnMut(Phase, f32),
) -> Result<Ingested, IngestError> {
    report(Phase::Probing, 0.0);
    let measured = media::probe_file(path, &policy.limits)?;
    report(Phase::Checking, 0.0);
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| IngestError::Io {
            dir: p.to_owned(),
            source,
        })
    };
    let flash = crate::media_checks::flash(&read(path)?, policy.flash, &policy.limits).map_err(
        |e| match e {
            crate::media_checks::CheckError::Refused { check, detail } => {
                IngestError::Refused { check, detail }
            }
            crate::media_checks::CheckError::Media { source, .. } => IngestError::Media(source),
        },
    )?;
    let mut done = if measured.kind == media::MediaKind::Video {
        gate_and_loudness(path, work_dir, policy, measured, report)?
    } else {
        Ingested {
            measured,
            transcoded: None,
            checks: Vec::new(),
            thumbnail: None,
        }
    };
    done.checks.extend(flash);
    let stored = read(done.transcoded.as_deref().unwrap_or(path))?;
    done.thumbnail = crate::posters::render(&stored)
        .inspect_err(|e| tracing::warn!("no thumbnail made at upload: {e}"))
        .ok();
    Ok(done)
}

/// The kiosk gate and loudness of a video: transcoded or normalised when needed.
fn gate_and_loudness(
    path: &Path,
    work_dir: &Path,
    policy: &MediaPolicy,
    measured: Measured,
    report: &mut dyn FnMut(Phase, f32),
) -> Result<Ingested, IngestError> {
    report(Phase::Checking, 0.0);
    let verdict = media::inspect(path, &policy.gate)?;
    report(Phase::Checking, 0.5);
    let loudness = media::measure_loudness(path)?;
    let target = policy.loudness_target;
    let off_target = loudness.filter(|l| !l.within(&target, LOUDNESS_TOLERANCE_LU));
    let mut checks = Vec::new();
    let loudness_check = |outcome, detail| MediaCheck {
        check: "loudness".into(),
        outcome,
        detail,
    };
    let normalise = match (loudness, off_target) {
        (None, _) => {
            checks.push(loudness_check(CheckOutcome::Passed, "no audio".into()));
            false
        }
        (Some(l), None) => {
            checks.push(loudness_check(
                CheckOutcome::Passed,
                if l.is_silent() {
                    "silent".into()
                } else {
                    format!(
                        "{}, within {LOUDNESS_TOLERANCE_LU} LU of {:.1} LUFS",
                        loudness_text(&l),
                        target.integrated_lufs
                    )
                },
            ));
            false
        }
        (Some(l), Some(_)) => {
            let found = format!(
                "{}, off the target of {:.1} LUFS",
                loudness_text(&l),
                target.integrated_lufs
            );
            match policy.loudness {
                LoudnessAction::Refuse => {
                    return Err(IngestError::Refused {
                        check: "loudness",
                        detail: found,
                    })
                }
                LoudnessAction::Warn => {
                    checks.push(loudness_check(CheckOutcome::Warning, found));
                    false
                }
                LoudnessAction::Normalise => true,
            }
        }
    };

    let gate_detail = format!(
        "{} {}x{} at {} fps, audio {}",
        verdict.codec,
        verdict.width,
        verdict.height,
        fps_text(verdict.fps),
        verdict.audio.as_deref().unwrap_or("none")
    );
    if verdict.inside() && !normalise {
        checks.insert(
            0,
            MediaCheck {
                check: "gate".into(),
                outcome: CheckOutcome::Passed,
                detail: format!("{gate_detail}: inside the kiosk gate"),
            },
        );
        checks.insert(
            1,
            MediaCheck {
                check: "transcode".into(),
                outcome: CheckOutcome::Passed,
                detail: "not needed: stored as uploaded".into(),
            },
        );
        return Ok(Ingested {
            measured,
            transcoded: None,
            checks,
            thumbnail: None,
        });
    }

    report(Phase::Transcoding, 0.0);
    let out = tempfile::Builder::new()
        .suffix(".mp4")
        .tempfile_in(work_dir)
        .map_err(|source| IngestError::Io {
            dir: work_dir.to_owned(),
            source,
        })?
        .into_temp_path();
    let spec = TranscodeSpec {
        loudness: normalise.then_some(target),
        ..TranscodeSpec::for_gate(policy.gate.clone())
    };
    let done = media::transcode(path, &out, &spec, &mut |f| report(Phase::Transcoding, f))
        .map_err(IngestError::Transcode)?;
    let stored = media::probe_file(&out, &policy.limits).map_err(IngestError::Transcode)?;

    checks.insert(
        0,
        MediaCheck {
            check: "gate".into(),
            outcome: if verdict.inside() {
                CheckOutcome::Passed
            } else {
                CheckOutcome::Changed
            },
            detail: if verdict.inside() {
                format!("{gate_detail}: inside the kiosk gate")
            } else {
                format!(
                    "{gate_detail}: outside the kiosk gate ({})",
                    verdict.reasons.join("; ")
                )
            },
        },
    );
    checks.insert(
        1,
        MediaCheck {
            check: "transcode".into(),
            outcome: CheckOutcome::Changed,
            detail: format!(
                "transcoded to h264 high {}x{} at {} fps, {}: {}",
                done.width,
                done.height,
                fps_text(done.fps),
                if verdict.audio.is_some() {
                    "audio aac"
                } else {
                    "no audio"
                },
                done.changes.join("; ")
            ),
        },
    );
    if normalise {
        if let Some(before) = done.loudness_before {
            checks.push(loudness_check(
                CheckOutcome::Changed,
                format!(
                    "{}, normalised to {:.1} LUFS by a gain of {:+.1} dB",
                    loudness_text(&before),
                    target.integrated_lufs,
                    done.gain_db
                ),
            ));
        }
    }
    Ok(Ingested {
        measured: stored,
        transcoded: Some(out),
        checks,
        thumbnail: None,
    })
}

fn loudness_text(l: &media::Loudness) -> String {
    format!(
        "{:.1} LUFS, true peak {:.1} dBTP",
        l.integrated_lufs, l.true_peak_dbtp
    )
}

fn fps_text(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.01 {
        format!("{}", fps.round())
    } else {
        format!("{fps:.2}")
    }
}

/// What the progress route answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub phase: Phase,
    /// How far the phase is, from 0 to 1.
    pub fraction: f32,
    /// Bytes received, the refusal, or the creative's id when done.
    pub detail: String,
}

/// Upload progress by client-chosen token, in memory: at most [`ProgressBoard::CAPACITY`]
/// entries, each forgotten [`ProgressBoard::KEEP`] after its last change (so a finished
/// upload can still be read for a while, and an abandoned one does not stay).
#[derive(Debug, Default)]
pub struct ProgressBoard {
    entries: Mutex<HashMap<String, (Progress, Instant)>>,
}

impl ProgressBoard {
    pub const CAPACITY: usize = 1024;
    pub const KEEP: Duration = Duration::from_secs(600);

    /// Whether `token` is acceptable: 1 to 64 letters, digits, `-` or `_`.
    pub fn valid_token(token: &str) -> bool {
        (1..=64).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// Records where the upload under `token` is; drops expired entries, then the
    /// oldest one when full.
    pub fn set(&self, token: &str, phase: Phase, fraction: f32, detail: impl Into<String>) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(token) {
            entries.retain(|_, (_, at)| now.duration_since(*at) < Self::KEEP);
            if entries.len() >= Self::CAPACITY {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        let progress = Progress {
            phase,
            fraction: fraction.clamp(0.0, 1.0),
            detail: detail.into(),
        };
        entries.insert(token.to_owned(), (progress, now));
    }

    pub fn get(&self, token: &str) -> Option<Progress> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token)
            .filter(|(_, at)| at.elapsed() < Self::KEEP)
            .map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2 s H.264 clip inside the gate with a 1 kHz tone at -10 LUFS, by the ffmpeg CLI.
    fn loud_clip(dir: &Path) -> PathBuf {
        let path = dir.join("loud.mp4");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=25:duration=2")
            .args([
                "-f",
                "lavfi",
                "-i",
                "aevalsrc=0.45*sin(2*PI*1000*t):s=48000:d=2",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args(["-c:a", "aac", "-movflags", "+faststart"])
            .arg(&path)
            .status()
            .expect("the ffmpeg command line is installed");
        assert!(status.success());
        path
    }

    #[test]
    fn loudness_off_target_is_normalised_warned_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let clip = loud_clip(dir.path());
        let run = |loudness| {
            let policy = MediaPolicy {
                loudness,
                ..MediaPolicy::default()
            };
            ingest(&clip, dir.path(), &policy, &mut |_, _| {})
        };

        let refused = run(LoudnessAction::Refuse).unwrap_err();
        assert_eq!(refused.check(), "loudness");
        assert!(refused.to_string().contains("-10.0 LUFS"), "{refused}");

        let warned = run(LoudnessAction::Warn).unwrap();
        assert!(
            warned.transcoded.is_none(),
            "inside the gate: stored as uploaded"
        );
        let outcomes: Vec<(&str, CheckOutcome)> = warned
            .checks
            .iter()
            .map(|c| (c.check.as_str(), c.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("gate", CheckOutcome::Passed),
                ("transcode", CheckOutcome::Passed),
                ("loudness", CheckOutcome::Warning),
                ("flash", CheckOutcome::Passed)
            ]
        );

        let mut phases = Vec::new();
        let policy = MediaPolicy::default();
        let normalised = ingest(&clip, dir.path(), &policy, &mut |p, _| phases.push(p)).unwrap();
        assert!(normalised.transcoded.is_some());
        assert!(phases.contains(&Phase::Transcoding), "{phases:?}");
        let loudness = normalised
            .checks
            .iter()
            .find(|c| c.check == "loudness")
            .unwrap();
        assert_eq!(loudness.outcome, CheckOutcome::Changed);
        assert!(
            loudness.detail.contains("normalised to -23.0 LUFS"),
            "{}",
            loudness.detail
        );
        let measured = media::measure_loudness(normalised.transcoded.as_ref().unwrap())
            .unwrap()
            .unwrap();
        assert!(
            (measured.integrated_lufs + 23.0).abs() <= 1.0,
            "{measured:?}"
        );
    }

    #[test]
    fn a_damaged_video_is_refused_by_the_file_check() {
        let dir = tempfile::tempdir().unwrap();
        let clip = loud_clip(dir.path());
        let bytes = std::fs::read(&clip).unwrap();
        let cut = dir.path().join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let e = ingest(&cut, dir.path(), &MediaPolicy::default(), &mut |_, _| {}).unwrap_err();
        assert_eq!(e.check(), "file", "{e}");
    }

    #[test]
    fn progress_board_is_bounded() {
        let board = ProgressBoard::default();
        for i in 0..ProgressBoard::CAPACITY + 10 {
            board.set(&format!("t{i}"), Phase::Receiving, 0.5, "");
        }
        assert_eq!(board.entries.lock().unwrap().len(), ProgressBoard::CAPACITY);
        assert!(board.get("t0").is_none(), "the oldest went first");
        board.set("t5000", Phase::Done, 2.0, "x");
        assert_eq!(board.get("t5000").unwrap().fraction, 1.0);
        assert!(ProgressBoard::valid_token("abc-DEF_1"));
        assert!(!ProgressBoard::valid_token(""));
        assert!(!ProgressBoard::valid_token("a/b"));
        assert!(!ProgressBoard::valid_token(&"a".repeat(65)));
    }
}
