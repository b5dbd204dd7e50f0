//! Loudness after EBU R128: integrated loudness (LUFS) and true peak (dBTP)
//! of a file's audio, measured with the `ebur128` crate on the decoded
//! samples, and the gain that brings it to a target without the true peak
//! going over a ceiling. Public screens play creatives one after another:
//! without normalising, a loud advert follows a quiet one.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use ebur128::{EbuR128, Mode};
use ffmpeg::{frame, media, Packet};

use crate::graph::AudioGraph;
use crate::transcode::audio_decoder;
use crate::video_probe::{corrupt, open_path};
use crate::MediaError;

/// A measured loudness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// Integrated loudness; minus infinity for silence.
    pub integrated_lufs: f64,
    /// Highest true peak over all channels; minus infinity for silence.
    pub true_peak_dbtp: f64,
}

/// Where normalising aims: the integrated loudness, and the true peak the
/// gain may not push the audio over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessTarget {
    pub integrated_lufs: f64,
    pub true_peak_ceiling_dbtp: f64,
}

impl Default for LoudnessTarget {
    /// EBU R128: -23 LUFS, true peak at most -1 dBTP.
    fn default() -> Self {
        LoudnessTarget {
            integrated_lufs: -23.0,
            true_peak_ceiling_dbtp: -1.0,
        }
    }
}

impl Loudness {
    /// Silence (or audio too quiet to gate) has no integrated loudness.
    pub fn is_silent(&self) -> bool {
        !self.integrated_lufs.is_finite()
    }

    /// The gain in dB that brings this loudness to `target`, lowered so the
    /// true peak stays under the ceiling; 0 for silence.
    pub fn gain_db(&self, target: &LoudnessTarget) -> f64 {
        if self.is_silent() {
            return 0.0;
        }
        let gain = target.integrated_lufs - self.integrated_lufs;
        if self.true_peak_dbtp.is_finite() {
            gain.min(target.true_peak_ceiling_dbtp - self.true_peak_dbtp)
        } else {
            gain
        }
    }

    /// Whether the integrated loudness is within `tolerance_lu` of the
    /// target (silence counts as within: there is nothing to normalise).
    pub fn within(&self, target: &LoudnessTarget, tolerance_lu: f64) -> bool {
        self.is_silent() || (self.integrated_lufs - target.integrated_lufs).abs() <= tolerance_lu
    }
}

/// Measures the loudness of the best audio stream of the file at `path`;
/// `None` when it has no audio.
pub fn measure_loudness(path: &Path) -> Result<Option<Loudness>, MediaError> {
    let mut input = open_path(path)?;
    let Some(stream) = input.streams().best(media::Type::Audio) else {
        return Ok(None);
    };
    let index = stream.index();
    let mut decoder = audio_decoder(&stream)?;
    let mut graph = AudioGraph::new(
        &decoder,
        stream.time_base(),
        "aformat=sample_fmts=flt",
        None,
    )?;
    let mut meter: Option<EbuR128> = None;
    let mut decoded = frame::Audio::empty();
    let mut filtered = frame::Audio::empty();

    let mut feed = |decoder: &mut ffmpeg::decoder::Audio,
                    graph: &mut AudioGraph,
                    meter: &mut Option<EbuR128>|
     -> Result<(), MediaError> {
        while decoder.receive_frame(&mut decoded).is_ok() {
            graph.push(&decoded)?;
            while graph.pull(&mut filtered) {
                add_to_meter(meter, &filtered)?;
            }
        }
        Ok(())
    };
    loop {
        let mut packet = Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(corrupt(format!("demuxing stopped: {e}"))),
        }
        if packet.stream() != index {
            continue;
        }
        decoder
            .send_packet(&packet)
            .map_err(|e| corrupt(format!("audio does not decode: {e}")))?;
        feed(&mut decoder, &mut graph, &mut meter)?;
    }
    decoder
        .send_eof()
        .map_err(|e| corrupt(format!("flushing the audio decoder failed: {e}")))?;
    feed(&mut decoder, &mut graph, &mut meter)?;
    graph.flush()?;
    while graph.pull(&mut filtered) {
        add_to_meter(&mut meter, &filtered)?;
    }

    let Some(meter) = meter else {
        return Ok(Some(Loudness {
            integrated_lufs: f64::NEG_INFINITY,
            true_peak_dbtp: f64::NEG_INFINITY,
        }));
    };
    let integrated_lufs = meter.loudness_global().map_err(meter_error)?;
    let mut peak = 0.0f64;
    for channel in 0..meter.channels() {
        peak = peak.max(meter.true_peak(channel).map_err(meter_error)?);
    }
    Ok(Some(Loudness {
        integrated_lufs,
        true_peak_dbtp: 20.0 * peak.log10(),
    }))
}

/// Feeds one packed-float frame to the meter, made on the first frame.
fn add_to_meter(meter: &mut Option<EbuR128>, frame: &frame::Audio) -> Result<(), MediaError> {
    let channels = u32::from(frame.channels());
    if meter.is_none() {
        *meter = Some(
            EbuR128::new(channels, frame.rate(), Mode::I | Mode::TRUE_PEAK).map_err(meter_error)?,
        );
    }
    let meter = meter
        .as_mut()
        .ok_or_else(|| MediaError::Ffmpeg("no loudness meter".into()))?;
    if meter.channels() != channels || meter.rate() != frame.rate() {
        meter
            .change_parameters(channels, frame.rate())
            .map_err(meter_error)?;
    }
    let samples = frame.samples() * channels as usize;
    let data = frame.data(0);
    let floats: Vec<f32> = data[..samples * 4]
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    meter.add_frames_f32(&floats).map_err(meter_error)
}

fn meter_error(e: ebur128::Error) -> MediaError {
    MediaError::Ffmpeg(format!("loudness measurement failed: {e}"))
}
