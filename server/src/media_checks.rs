//! The media checks the server runs at upload beside probing, with what the
//! configuration says to do when one fails (`[media]` in the config): for now
//! the flash check (WCAG 2.3.1, measured by `media::flash`). A pass or a
//! warning becomes a [`MediaCheck`] kept on the creative; a refusal is a
//! [`CheckError::Refused`] naming the check and what it found, and nothing is
//! stored. Synchronous CPU and FFI work: callers run it off the runtime.

use serde::Deserialize;

use crate::store::{CheckOutcome, MediaCheck};

/// What to do with a creative that fails the flash check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlashMode {
    /// Refuse the upload (the default: public screens must not trigger seizures).
    #[default]
    Refuse,
    /// Store it with a warning on the creative, for the approver to judge.
    Warn,
}

/// Why an upload failed its checks.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A check found the creative outside its bounds, and is configured to refuse.
    #[error("{check} check: {detail}")]
    Refused { check: &'static str, detail: String },
    /// The file could not be analysed.
    #[error("{check} check: {source}")]
    Media {
        check: &'static str,
        #[source]
        source: media::MediaError,
    },
}

/// The flash check of a video or an animation; `None` for a still.
pub fn flash(
    data: &[u8],
    mode: FlashMode,
    limits: &media::Limits,
) -> Result<Option<MediaCheck>, CheckError> {
    const CHECK: &str = "flash";
    let report = media::flash_check(data, limits).map_err(|source| CheckError::Media {
        check: CHECK,
        source,
    })?;
    let Some(report) = report else {
        return Ok(None);
    };
    let outcome = match (report.passes(), mode) {
        (true, _) => CheckOutcome::Passed,
        (false, FlashMode::Warn) => CheckOutcome::Warning,
        (false, FlashMode::Refuse) => {
            return Err(CheckError::Refused {
                check: CHECK,
                detail: report.to_string(),
            })
        }
    };
    Ok(Some(MediaCheck {
        check: CHECK.to_owned(),
        outcome,
        detail: report.to_string(),
    }))
}
