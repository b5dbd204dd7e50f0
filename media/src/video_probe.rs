//! Video ingest through the system FFmpeg (`ffmpeg-next`): open a container
//! from memory, pick its video stream, check the limits from the headers,
//! then demux and decode every packet of that stream to prove the file is
//! whole. Also hands decoded frames, scaled down, to the poster frame and
//! the flash check.
//!
//! Only the ISO base media (MP4, MOV) and Matroska (MKV, WebM) demuxers may
//! run, so an upload can never make FFmpeg follow a playlist or a reference
//! to another file. Audio is ignored. All of it is blocking FFI.

use std::io::Cursor;
use std::sync::OnceLock;

use ffmpeg_next as ffmpeg;

use ffmpeg::format::context::{Input, StreamIo};
use ffmpeg::format::stream::Disposition;
use ffmpeg::software::scaling;
use ffmpeg::util::error::EAGAIN;
use ffmpeg::{codec, decoder, frame, media, Packet, Rational};

use crate::{Limits, MediaError};

/// Demuxers FFmpeg may pick for an upload (matched per name by FFmpeg).
pub(crate) const DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm";

/// What a fully decoded video measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Video {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) duration_ms: u64,
}

/// Opens `data`, checks it against `limits`, decodes every frame of its
/// video stream and checks that the frames cover the declared length.
pub(crate) fn validate(data: Vec<u8>, limits: &Limits) -> Result<Video, MediaError> {
    let mut open = Opened::new(data, limits)?;
    let mut tally = Tally::default();
    let mut frame = frame::Video::empty();
    loop {
        let mut packet = Packet::empty();
        match packet.read(&mut open.input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(corrupt(format!("demuxing stopped: {e}"))),
        }
        if packet.stream() != open.index {
            continue;
        }
        tally.packets += 1;
        if packet.is_corrupt() {
            return Err(corrupt(format!("packet {} is cut short", tally.packets)));
        }
        open.decoder
            .send_packet(&packet)
            .map_err(|e| corrupt(format!("packet {} does not decode: {e}", tally.packets)))?;
        open.receive_frames(&mut frame, &mut tally, limits)?;
    }
    open.decoder
        .send_eof()
        .map_err(|e| corrupt(format!("flushing the decoder failed: {e}")))?;
    open.receive_frames(&mut frame, &mut tally, limits)?;
    open.finish(&tally, limits)
}

/// One decoded frame handed to an [`each_frame`] visitor.
pub(crate) struct FrameAt<'a> {
    pub(crate) frame: &'a frame::Video,
    /// When it shows, from the first frame's time, in milliseconds.
    pub(crate) at_ms: u64,
    /// The length the headers declare, if any.
    pub(crate) declared_ms: Option<u64>,
}

/// Decodes the video stream in order after the same container and limit
/// checks as [`validate`], handing each frame to `visit` until it returns
/// `false` or the stream ends. Frames without a timestamp are placed one
/// frame interval (40 ms at an unknown rate) after the previous one.
pub(crate) fn each_frame(
    data: Vec<u8>,
    limits: &Limits,
    mut visit: impl FnMut(FrameAt<'_>) -> Result<bool, MediaError>,
) -> Result<(), MediaError> {
    let mut open = Opened::new(data, limits)?;
    let declared_ms = open.declared.ms();
    let step_ms = open
        .frame_interval
        .and_then(|i| to_ms(i, open.time_base))
        .filter(|&ms| ms > 0)
        .unwrap_or(40);
    let mut frame = frame::Video::empty();
    let mut last_ms: Option<u64> = None;
    let mut sent_eof = false;
    loop {
        match open.decoder.receive_frame(&mut frame) {
            Ok(()) => {
                limits.check_frame(frame.width(), frame.height())?;
                let at_ms = frame
                    .timestamp()
                    .or(frame.pts())
                    .and_then(|ts| to_ms(ts.saturating_sub(open.start), open.time_base))
                    .or(last_ms.map(|l| l + step_ms))
                    .unwrap_or(0);
                last_ms = Some(at_ms);
                let at = FrameAt {
                    frame: &frame,
                    at_ms,
                    declared_ms,
                };
                if !visit(at)? {
                    return Ok(());
                }
                continue;
            }
            Err(ffmpeg::Error::Other { errno: EAGAIN }) => {}
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(e) => return Err(corrupt(format!("decoding failed: {e}"))),
        }
        if sent_eof {
            return Ok(());
        }
        let mut packet = Packet::empty();
        match packet.read(&mut open.input) {
            Ok(()) if packet.stream() != open.index => {}
            Ok(()) => open
                .decoder
                .send_packet(&packet)
                .map_err(|e| corrupt(format!("decoding failed: {e}")))?,
            Err(ffmpeg::Error::Eof) => {
                sent_eof = true;
                open.decoder
                    .send_eof()
                    .map_err(|e| corrupt(format!("flushing the decoder failed: {e}")))?;
            }
            Err(e) => return Err(corrupt(format!("demuxing stopped: {e}"))),
        }
    }
}

/// `frame` scaled (area averaging) to `width` x `height` RGB bytes, row by
/// row; `scaler` is reused while the frame's format and size stay the same.
pub(crate) fn scale_rgb(
    frame: &frame::Video,
    (width, height): (u32, u32),
    scaler: &mut Option<scaling::Context>,
) -> Result<Vec<u8>, MediaError> {
    let fits = scaler.as_ref().is_some_and(|s| {
        let input = s.input();
        (input.format, input.width, input.height) == (frame.format(), frame.width(), frame.height())
            && (s.output().width, s.output().height) == (width, height)
    });
    if !fits {
        *scaler = Some(
            scaling::Context::get(
                frame.format(),
                frame.width(),
                frame.height(),
                ffmpeg::format::Pixel::RGB24,
                width,
                height,
                scaling::Flags::AREA,
            )
            .map_err(|e| MediaError::Ffmpeg(format!("cannot set up scaling: {e}")))?,
        );
    }
    let scaler = scaler
        .as_mut()
        .ok_or_else(|| MediaError::Ffmpeg("no scaler".into()))?;
    let mut rgb = frame::Video::empty();
    scaler
        .run(frame, &mut rgb)
        .map_err(|e| MediaError::Ffmpeg(format!("scaling failed: {e}")))?;
    let row = width as usize * 3;
    let stride = rgb.stride(0);
    let mut pixels = Vec::with_capacity(row * height as usize);
    for line in rgb.data(0).chunks(stride).take(height as usize) {
        pixels.extend_from_slice(&line[..row]);
    }
    Ok(pixels)
}

/// A container opened on its video stream, with what its headers declare.
struct Opened {
    input: Input,
    decoder: decoder::Video,
    index: usize,
    time_base: Rational,
    /// Presentation time of the first frame, in `time_base` units.
    start: i64,
    /// Length of one frame from the average frame rate, in `time_base` units.
    frame_interval: Option<i64>,
    /// Frame count from the stream header (MP4 sample tables), if any.
    declared_frames: Option<u64>,
    declared: Declared,
}

/// Where a declared duration comes from; the tolerance differs.
#[derive(Debug, Clone, Copy)]
enum Declared {
    /// The video stream's own header (or a container with nothing else):
    /// frames must reach it closely.
    Stream(u64),
    /// The whole container, which may include longer audio.
    Container(u64),
    Unknown,
}

impl Declared {
    fn ms(self) -> Option<u64> {
        match self {
            Declared::Stream(ms) | Declared::Container(ms) => Some(ms),
            Declared::Unknown => None,
        }
    }
}

/// Running counts while decoding.
#[derive(Debug, Default)]
struct Tally {
    packets: u64,
    frames: u64,
    /// End of the latest frame (timestamp plus its length), in stream units.
    end: Option<i64>,
}

impl Opened {
    fn new(data: Vec<u8>, limits: &Limits) -> Result<Self, MediaError> {
        init()?;
        let io = StreamIo::from_read_seek(Cursor::new(data))
            .map_err(|e| MediaError::Ffmpeg(format!("cannot set up reading: {e}")))?;
        let mut options = ffmpeg::Dictionary::new();
        options.set("format_whitelist", DEMUXERS);
        let input = ffmpeg::format::input_from_stream(io, None, Some(options))
            .map_err(|e| corrupt(format!("the container does not open: {e}")))?;

        let stream = input
            .streams()
            .best(media::Type::Video)
            .filter(|s| !s.disposition().contains(Disposition::ATTACHED_PIC))
            .ok_or(MediaError::NoVideoStream)?;
        let index = stream.index();
        let time_base = stream.time_base();
        let start = Some(stream.start_time()).filter(|&t| t != ffmpeg::ffi::AV_NOPTS_VALUE);
        let frame_interval = interval(stream.avg_frame_rate(), time_base)
            .or_else(|| interval(stream.rate(), time_base));
        let declared_frames = u64::try_from(stream.frames()).ok().filter(|&n| n > 0);
        let container_ms = Some(input.duration())
            .filter(|&us| us > 0)
            .map(|us| (us.unsigned_abs() + 500) / 1000);
        let declared = match (to_ms(stream.duration(), time_base), container_ms) {
            (Some(ms), _) if ms > 0 => Declared::Stream(ms),
            // A container holding nothing else lasts as long as its video.
            (_, Some(ms)) if input.nb_streams() == 1 => Declared::Stream(ms),
            (_, Some(ms)) => Declared::Container(ms),
            _ => Declared::Unknown,
        };

        let parameters = stream.parameters();
        let codec_id = parameters.id();
        if ffmpeg::decoder::find(codec_id).is_none() {
            return Err(MediaError::Unsupported(format!("video codec {codec_id:?}")));
        }
        let mut context = codec::context::Context::from_parameters(parameters)
            .map_err(|e| MediaError::Ffmpeg(format!("cannot set up the decoder: {e}")))?;
        context.set_threading(codec::threading::Config::kind(
            codec::threading::Type::Frame,
        ));
        let mut decoder = context
            .decoder()
            .video()
            .map_err(|e| corrupt(format!("the {codec_id:?} decoder does not open: {e}")))?;
        decoder.set_packet_time_base(time_base);

        limits.check_frame(decoder.width(), decoder.height())?;
        if decoder.width() == 0 || decoder.height() == 0 {
            return Err(corrupt("the video stream has no frame size".into()));
        }
        if let Some(ms) = declared.ms() {
            check_duration(ms, limits)?;
        }
        Ok(Opened {
            input,
            decoder,
            index,
            time_base,
            start: start.unwrap_or(0),
            frame_interval,
            declared_frames,
            declared,
        })
    }

    /// Drains every frame the decoder has ready, checking each.
    fn receive_frames(
        &mut self,
        frame: &mut frame::Video,
        tally: &mut Tally,
        limits: &Limits,
    ) -> Result<(), MediaError> {
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {}
                Err(ffmpeg::Error::Other { errno: EAGAIN }) | Err(ffmpeg::Error::Eof) => {
                    return Ok(())
                }
                Err(e) => return Err(corrupt(format!("decoding failed: {e}"))),
            }
            tally.frames += 1;
            if frame.is_corrupt() || frame.has_decode_errors() {
                return Err(corrupt(format!(
                    "frame {} has decoding errors",
                    tally.frames
                )));
            }
            // The frame size may change mid-stream; every frame must fit.
            limits.check_frame(frame.width(), frame.height())?;
            if let Some(ts) = frame.timestamp().or(frame.pts()) {
                let length = Some(frame.packet().duration)
                    .filter(|&d| d > 0)
                    .or(self.frame_interval)
                    .unwrap_or(0);
                let end = ts.saturating_add(length);
                tally.end = Some(tally.end.map_or(end, |e| e.max(end)));
                if let Some(ms) = to_ms(end.saturating_sub(self.start), self.time_base) {
                    check_duration(ms, limits)?;
                }
            }
        }
    }

    /// Compares what was decoded with what the headers declared.
    fn finish(&self, tally: &Tally, limits: &Limits) -> Result<Video, MediaError> {
        if tally.frames == 0 {
            return Err(corrupt("no frame decodes".into()));
        }
        if let Some(declared) = self.declared_frames {
            if tally.packets < declared {
                return Err(corrupt(format!(
                    "only {} of {declared} frames are present",
                    tally.packets
                )));
            }
        }
        let decoded_ms = tally
            .end
            .and_then(|end| to_ms(end.saturating_sub(self.start), self.time_base));
        let duration_ms = match (self.declared, decoded_ms) {
            (Declared::Unknown, None) => {
                return Err(corrupt("neither headers nor frames give a duration".into()))
            }
            (Declared::Unknown, Some(decoded)) => decoded,
            // Frames without timestamps: the header is all there is.
            (Declared::Stream(declared) | Declared::Container(declared), None) => declared,
            (Declared::Stream(declared), Some(decoded)) => {
                let tolerance = self.reaches(declared, decoded)?;
                // Frames running past the header win: they are what plays.
                if decoded > declared.saturating_add(tolerance) {
                    decoded
                } else {
                    declared
                }
            }
            // The container's length may be the audio's; report the video's.
            (Declared::Container(declared), Some(decoded)) => {
                self.reaches(declared, decoded)?;
                decoded
            }
        };
        check_duration(duration_ms, limits)?;
        Ok(Video {
            width: self.decoder.width(),
            height: self.decoder.height(),
            duration_ms,
        })
    }

    /// Checks that frames decoded up to `decoded_ms` cover `declared_ms`
    /// closely enough, and returns the tolerance used: a frame and a half
    /// (at least 50 ms; 200 ms at an unknown rate) against the stream's own
    /// header; against the container's, which may include longer audio, a
    /// second or a tenth, whichever is more.
    fn reaches(&self, declared_ms: u64, decoded_ms: u64) -> Result<u64, MediaError> {
        let tolerance = match self.declared {
            Declared::Stream(_) => match self.frame_interval.and_then(|i| to_ms(i, self.time_base))
            {
                Some(frame_ms) if frame_ms > 0 => (frame_ms * 3 / 2).max(50),
                _ => 200,
            },
            Declared::Container(_) | Declared::Unknown => (declared_ms / 10).max(1000),
        };
        if decoded_ms.saturating_add(tolerance) < declared_ms {
            return Err(corrupt(format!(
                "frames stop at {decoded_ms} ms of a declared {declared_ms} ms"
            )));
        }
        Ok(tolerance)
    }
}

/// Initialises FFmpeg once per process and silences its log: every problem
/// it reports reaches the caller as a `MediaError` instead.
pub(crate) fn init() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| e.to_string())?;
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        Ok(())
    })
    .clone()
    .map_err(MediaError::Ffmpeg)
}

fn check_duration(duration_ms: u64, limits: &Limits) -> Result<(), MediaError> {
    if duration_ms > limits.max_duration_ms {
        return Err(MediaError::TooLong {
            duration_ms,
            max_ms: limits.max_duration_ms,
        });
    }
    Ok(())
}

/// `ts` in `time_base` units as whole milliseconds (rounded), if both make
/// sense.
fn to_ms(ts: i64, time_base: Rational) -> Option<u64> {
    let (num, den) = (
        i128::from(time_base.numerator()),
        i128::from(time_base.denominator()),
    );
    if ts < 0 || num <= 0 || den <= 0 {
        return None;
    }
    u64::try_from((i128::from(ts) * num * 1000 + den / 2) / den).ok()
}

/// One frame at `rate` frames per second, in `time_base` units.
fn interval(rate: Rational, time_base: Rational) -> Option<i64> {
    let (rn, rd) = (i128::from(rate.numerator()), i128::from(rate.denominator()));
    let (tn, td) = (
        i128::from(time_base.numerator()),
        i128::from(time_base.denominator()),
    );
    if rn <= 0 || rd <= 0 || tn <= 0 || td <= 0 {
        return None;
    }
    i64::try_from((rd * td) / (rn * tn)).ok().filter(|&i| i > 0)
}

/// Opens a video file on disk for reading, with the same demuxer whitelist
/// as uploads and only the `file` protocol, so a container cannot make
/// FFmpeg open anything else.
pub(crate) fn open_path(path: &std::path::Path) -> Result<Input, MediaError> {
    // A file that cannot be read is said so, not blamed on its container.
    std::fs::File::open(path).map_err(|source| MediaError::Io {
        path: path.to_owned(),
        source,
    })?;
    init()?;
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", DEMUXERS);
    options.set("protocol_whitelist", "file");
    ffmpeg::format::input_with_dictionary(&path, options)
        .map_err(|e| corrupt(format!("the container does not open: {e}")))
}

pub(crate) fn corrupt(reason: String) -> MediaError {
    MediaError::CorruptVideo(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_conversions() {
        let tb = Rational::new(1, 12_800);
        for (ts, expect) in [
            (128_000, Some(10_000)),
            (64, Some(5)),
            (63, Some(5)),
            (0, Some(0)),
            (-1, None),
        ] {
            assert_eq!(to_ms(ts, tb), expect, "{ts}");
        }
        assert_eq!(to_ms(1, Rational::new(0, 1)), None);
        assert_eq!(interval(Rational::new(25, 1), tb), Some(512));
        assert_eq!(
            interval(Rational::new(30_000, 1001), Rational::new(1, 30_000)),
            Some(1001)
        );
        assert_eq!(interval(Rational::new(0, 1), tb), None);
    }
}
