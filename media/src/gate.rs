//! The video gate: what a kiosk's hardware decoder is known to play. A video
//! inside it is stored as uploaded; one outside it is transcoded into it
//! (see `transcode`). The verdict lists every reason a file is outside, so
//! an operator learns them all at once rather than one per upload.
//!
//! Codec, profile, level, pixel format, size and rate come from the stream
//! headers; the container's layout (index before the media data) from
//! walking the top-level MP4 boxes, which FFmpeg does not report.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ffmpeg_next as ffmpeg;

use ffmpeg::format::stream::Disposition;
use ffmpeg::{codec, media, Rational};

use crate::video_probe::{corrupt, open_path};
use crate::MediaError;

/// H.264 profiles a kiosk may be limited to, from the most to the least
/// constrained; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum H264Profile {
    Baseline,
    Main,
    High,
}

impl H264Profile {
    /// The profile from its lowercase name ("baseline", "main", "high").
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "baseline" => Some(H264Profile::Baseline),
            "main" => Some(H264Profile::Main),
            "high" => Some(H264Profile::High),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::High => "high",
        }
    }
}

/// What kiosks play. The codec (H.264), pixel format (yuv420p), audio (AAC
/// or none) and container (MP4 with the index before the media data, so a
/// player can start before the whole file is there) are fixed; the limits
/// below are per deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoGate {
    pub max_profile: H264Profile,
    /// H.264 level times ten (42 is level 4.2).
    pub max_level: u32,
    pub max_width: u32,
    pub max_height: u32,
    pub max_fps: u32,
}

impl Default for VideoGate {
    /// H.264 High at most level 4.2, at most 1920x1080 and 30 fps.
    fn default() -> Self {
        VideoGate {
            max_profile: H264Profile::High,
            max_level: 42,
            max_width: 1920,
            max_height: 1080,
            max_fps: 30,
        }
    }
}

/// What [`inspect`] found, and every reason the file is outside the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateVerdict {
    /// FFmpeg's short codec name ("h264", "vp9", "hevc").
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Average frame rate; 0 when the headers give none.
    pub fps: f64,
    /// Audio codec name, `None` without audio.
    pub audio: Option<String>,
    /// Empty when the file is inside the gate.
    pub reasons: Vec<String>,
}

impl GateVerdict {
    pub fn inside(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// FFmpeg's H.264 profile numbers (`FF_PROFILE_H264_*`) and what they are.
fn profile_of(number: i32) -> (Option<H264Profile>, String) {
    match number {
        66 => (Some(H264Profile::Baseline), "baseline".into()),
        578 => (Some(H264Profile::Baseline), "constrained baseline".into()),
        77 => (Some(H264Profile::Main), "main".into()),
        100 => (Some(H264Profile::High), "high".into()),
        88 => (None, "extended".into()),
        110 => (None, "high 10".into()),
        122 => (None, "high 4:2:2".into()),
        244 => (None, "high 4:4:4".into()),
        n => (None, format!("profile {n}")),
    }
}

/// Judges the video file at `path` against `gate`.
pub fn inspect(path: &Path, gate: &VideoGate) -> Result<GateVerdict, MediaError> {
    let input = open_path(path)?;
    let mut reasons = Vec::new();

    let stream = input
        .streams()
        .best(media::Type::Video)
        .filter(|s| !s.disposition().contains(Disposition::ATTACHED_PIC))
        .ok_or(MediaError::NoVideoStream)?;
    let parameters = stream.parameters();
    let codec_id = parameters.id();
    let codec = codec_name(codec_id);
    let (profile, level) = profile_and_level(&parameters);
    let decoder = codec::context::Context::from_parameters(parameters)
        .and_then(|c| c.decoder().video())
        .map_err(|e| MediaError::Unsupported(format!("video codec {codec}: {e}")))?;
    let (width, height, pixel) = (decoder.width(), decoder.height(), decoder.format());
    if width == 0 || height == 0 {
        return Err(corrupt("the video stream has no frame size".into()));
    }

    if codec_id != codec::Id::H264 {
        reasons.push(format!("codec {codec}, not h264"));
    } else {
        let (known, name) = profile_of(profile);
        match known {
            Some(p) if p <= gate.max_profile => {}
            _ => reasons.push(format!(
                "h264 profile {name}, over {}",
                gate.max_profile.name()
            )),
        }
        let level = u32::try_from(level).unwrap_or(0);
        if level == 0 || level > gate.max_level {
            reasons.push(format!(
                "h264 level {}, over {}",
                level_text(level),
                level_text(gate.max_level)
            ));
        }
    }
    if pixel != ffmpeg::format::Pixel::YUV420P {
        reasons.push(format!(
            "pixel format {}, not yuv420p",
            pixel.descriptor().map_or("unknown", |d| d.name())
        ));
    }
    let fps = rate_of(stream.avg_frame_rate()).or_else(|| rate_of(stream.rate()));
    if width > gate.max_width || height > gate.max_height {
        reasons.push(format!(
            "{width}x{height}, over {}x{}",
            gate.max_width, gate.max_height
        ));
    }
    match fps {
        Some(fps) if fps > f64::from(gate.max_fps) + 0.01 => reasons.push(format!(
            "{width}x{height} at {} fps, over {}",
            fps_text(fps),
            gate.max_fps
        )),
        Some(_) => {}
        None => reasons.push("no frame rate in the headers".into()),
    }

    let audio: Vec<codec::Id> = input
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Audio)
        .map(|s| s.parameters().id())
        .collect();
    if audio.len() > 1 {
        reasons.push(format!("{} audio streams, at most one", audio.len()));
    }
    for id in audio.iter().filter(|&&id| id != codec::Id::AAC) {
        reasons.push(format!("audio {}, not aac", codec_name(*id)));
    }

    let demuxer = input.format().name().to_owned();
    drop(input);
    if demuxer.starts_with("mov,") {
        reasons.extend(mp4_layout(path)?);
    } else {
        let container = demuxer.split(',').next_back().unwrap_or(&demuxer);
        reasons.push(format!("container {container}, not mp4"));
    }

    Ok(GateVerdict {
        codec,
        width,
        height,
        fps: fps.unwrap_or(0.0),
        audio: audio.first().map(|&id| codec_name(id)),
        reasons,
    })
}

/// Reasons an ISO base media file is not a fast-start MP4: a QuickTime
/// brand, or the index (`moov`) after the media data (`mdat`), which makes
/// a player read the whole file before it can start.
fn mp4_layout(path: &Path) -> Result<Vec<String>, MediaError> {
    let io_error = |source| MediaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let mut reasons = Vec::new();
    let mut at = 0u64;
    let (mut moov, mut mdat) = (None, None);
    while at + 8 <= size {
        file.seek(SeekFrom::Start(at)).map_err(io_error)?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8]).map_err(io_error)?;
        let kind = [header[4], header[5], header[6], header[7]];
        let mut length = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        if length == 1 {
            file.read_exact(&mut header[8..16]).map_err(io_error)?;
            length = u64::from_be_bytes(header[8..16].try_into().unwrap_or([0; 8]));
        } else if length == 0 {
            length = size - at;
        }
        if length < 8 {
            return Err(corrupt(format!(
                "an MP4 box at byte {at} has length {length}"
            )));
        }
        match &kind {
            b"ftyp" => {
                let mut brand = [0u8; 4];
                file.read_exact(&mut brand).map_err(io_error)?;
                if &brand == b"qt  " {
                    reasons.push("container QuickTime (mov), not mp4".into());
                }
            }
            b"moov" => moov = moov.or(Some(at)),
            b"mdat" => mdat = mdat.or(Some(at)),
            _ => {}
        }
        at = at.saturating_add(length);
    }
    if let (Some(moov), Some(mdat)) = (moov, mdat) {
        if moov > mdat {
            reasons.push("the index (moov) is after the media data (mdat), not fast-start".into());
        }
    }
    Ok(reasons)
}

fn codec_name(id: codec::Id) -> String {
    id.name().to_owned()
}

/// The stream's H.264 profile and level numbers, which `ffmpeg-next` has no
/// accessor for.
#[allow(
    unsafe_code,
    reason = "AVCodecParameters' profile and level have no safe accessor"
)]
fn profile_and_level(parameters: &codec::Parameters) -> (i32, i32) {
    // SAFETY: `parameters` points at the stream's live AVCodecParameters;
    // both fields are plain integers.
    unsafe {
        let p = &*parameters.as_ptr();
        (p.profile, p.level)
    }
}

/// A rate as frames per second, `None` if unset.
pub(crate) fn rate_of(rate: Rational) -> Option<f64> {
    (rate.numerator() > 0 && rate.denominator() > 0)
        .then(|| f64::from(rate.numerator()) / f64::from(rate.denominator()))
}

fn level_text(level: u32) -> String {
    format!("{}.{}", level / 10, level % 10)
}

pub(crate) fn fps_text(fps: f64) -> String {
    if (fps - fps.round()).abs() < 0.01 {
        format!("{}", fps.round())
    } else {
        format!("{fps:.2}")
    }
}
