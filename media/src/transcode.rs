//! Transcoding a video into the gate with `ffmpeg-next`: decode, scale down
//! to fit (aspect kept, even sides), cap the frame rate, encode H.264 High
//! (libx264, level 4.2, yuv420p), audio to AAC at 48 kHz with a loudness
//! gain, mux MP4 with the index at the front (`movflags=+faststart`).
//!
//! Scaling, rate capping and the audio gain, resampling and re-framing run
//! in FFmpeg filter graphs (`scale`, `fps`, `format`, `volume`, `aresample`,
//! `aformat`), the same code the `ffmpeg` command line runs, so the bench
//! compares like with like. Synchronous and CPU-heavy: callers on an async
//! runtime use `spawn_blocking`.

use std::path::Path;

use ffmpeg_next as ffmpeg;

use ffmpeg::format::stream::Disposition;
use ffmpeg::{codec, decoder, encoder, frame, media, picture, Packet, Rational};

use crate::gate::{fps_text, inspect, rate_of, VideoGate};
use crate::graph::{AudioGraph, VideoGraph};
use crate::loudness::{measure_loudness, Loudness, LoudnessTarget};
use crate::video_probe::{corrupt, open_path};
use crate::MediaError;

/// x264 settings: a fast preset at a quality kiosks show well; the bench
/// gives the `ffmpeg` command line the same.
pub const X264_PRESET: &str = "veryfast";
pub const X264_CRF: &str = "23";
const AUDIO_RATE: i32 = 48_000;
const AUDIO_BIT_RATE: usize = 128_000;

/// What to make.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodeSpec {
    pub gate: VideoGate,
    /// The frame to fit in; at most the gate's (smaller for renditions).
    pub max_width: u32,
    pub max_height: u32,
    /// Normalise the audio to this loudness; `None` keeps its level.
    pub loudness: Option<LoudnessTarget>,
}

impl TranscodeSpec {
    /// The gate's own frame, normalised to the default loudness target.
    pub fn for_gate(gate: VideoGate) -> Self {
        TranscodeSpec {
            max_width: gate.max_width,
            max_height: gate.max_height,
            gate,
            loudness: Some(LoudnessTarget::default()),
        }
    }
}

/// What a transcode made, and what changed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcoded {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// The source's duration from its headers, if they give one.
    pub duration_ms: Option<u64>,
    /// Loudness of the source audio, if it was measured.
    pub loudness_before: Option<Loudness>,
    /// Gain applied to the audio, in dB (0 when not normalised).
    pub gain_db: f64,
    /// One line per change, e.g. "codec vp9 -> h264", "1280x720 -> 960x540".
    pub changes: Vec<String>,
}

/// Transcodes the video at `src` into `out` (an MP4) per `spec`, calling
/// `progress` with the fraction of the duration done (0 to 1).
pub fn transcode(
    src: &Path,
    out: &Path,
    spec: &TranscodeSpec,
    progress: &mut dyn FnMut(f32),
) -> Result<Transcoded, MediaError> {
    let before = inspect(src, &spec.gate)?;
    let (loudness_before, gain_db) = match spec.loudness {
        Some(target) => match measure_loudness(src)? {
            Some(l) => (Some(l), l.gain_db(&target)),
            None => (None, 0.0),
        },
        None => (None, 0.0),
    };

    let mut input = open_path(src)?;
    let video_in = input
        .streams()
        .best(media::Type::Video)
        .filter(|s| !s.disposition().contains(Disposition::ATTACHED_PIC))
        .ok_or(MediaError::NoVideoStream)?;
    let video_index = video_in.index();
    let video_tb = video_in.time_base();
    let start = Some(video_in.start_time())
        .filter(|&t| t != ffmpeg::ffi::AV_NOPTS_VALUE)
        .unwrap_or(0);
    let duration = Some(video_in.duration()).filter(|&d| d > 0).or_else(|| {
        Some(input.duration())
            .filter(|&d| d > 0)
            .map(|us| ffmpeg::rescale::Rescale::rescale(&us, (1, 1_000_000), video_tb))
    });
    let src_fps = rate_of(video_in.avg_frame_rate()).or_else(|| rate_of(video_in.rate()));
    let mut video_decoder = video_decoder(&video_in)?;
    let audio_in = input
        .streams()
        .best(media::Type::Audio)
        .map(|s| (s.index(), s.time_base(), audio_decoder(&s)));

    let max_width = spec.max_width.min(spec.gate.max_width);
    let max_height = spec.max_height.min(spec.gate.max_height);
    let (width, height) = fit(
        video_decoder.width(),
        video_decoder.height(),
        max_width,
        max_height,
    );
    let cap_fps = src_fps.is_none_or(|fps| fps > f64::from(spec.gate.max_fps) + 0.01);
    let fps = if cap_fps {
        f64::from(spec.gate.max_fps)
    } else {
        src_fps.unwrap_or(f64::from(spec.gate.max_fps))
    };

    let mut output = ffmpeg::format::output_as(&out, "mp4")
        .map_err(|e| MediaError::Ffmpeg(format!("cannot create {}: {e}", out.display())))?;
    let global_header = output
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);

    let mut video_graph = VideoGraph::new(
        &video_decoder,
        video_tb,
        width,
        height,
        cap_fps.then_some(spec.gate.max_fps),
    )?;
    let video_out_tb = video_graph.time_base();
    let x264 = encoder::find_by_name("libx264")
        .ok_or_else(|| MediaError::Unsupported("encoder libx264 (not in this FFmpeg)".into()))?;
    let mut video_encoder = codec::context::Context::new_with_codec(x264)
        .encoder()
        .video()
        .map_err(ffmpeg_error("set up the H.264 encoder"))?;
    video_encoder.set_width(width);
    video_encoder.set_height(height);
    video_encoder.set_format(ffmpeg::format::Pixel::YUV420P);
    video_encoder.set_time_base(video_out_tb);
    video_encoder.set_frame_rate(Some(video_graph.frame_rate(fps)));
    if global_header {
        video_encoder.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    set_level(&mut video_encoder, spec.gate.max_level.min(42));
    let mut x264_options = ffmpeg::Dictionary::new();
    x264_options.set("preset", X264_PRESET);
    x264_options.set("crf", X264_CRF);
    x264_options.set("profile", "high");
    // AVCodecContext defaults to one thread; the `ffmpeg` command line asks for "auto"
    // (one per core), and so do we.
    x264_options.set("threads", "auto");
    let mut video_encoder = video_encoder
        .open_with(x264_options)
        .map_err(ffmpeg_error("open the H.264 encoder"))?;
    {
        let mut stream = output
            .add_stream(x264)
            .map_err(ffmpeg_error("add the video stream"))?;
        stream.set_parameters(&video_encoder);
        stream.set_time_base(video_out_tb);
    }

    let mut audio = match audio_in {
        Some((index, tb, decoder)) => {
            let decoder = decoder?;
            let aac = encoder::find(codec::Id::AAC).ok_or_else(|| {
                MediaError::Unsupported("encoder aac (not in this FFmpeg)".into())
            })?;
            let mut enc = codec::context::Context::new_with_codec(aac)
                .encoder()
                .audio()
                .map_err(ffmpeg_error("set up the AAC encoder"))?;
            enc.set_rate(AUDIO_RATE);
            enc.set_channel_layout(ffmpeg::ChannelLayout::STEREO);
            enc.set_channels(2);
            enc.set_format(ffmpeg::format::Sample::F32(
                ffmpeg::format::sample::Type::Planar,
            ));
            enc.set_bit_rate(AUDIO_BIT_RATE);
            enc.set_time_base((1, AUDIO_RATE));
            if global_header {
                enc.set_flags(codec::Flags::GLOBAL_HEADER);
            }
            let enc = enc
                .open_as(aac)
                .map_err(ffmpeg_error("open the AAC encoder"))?;
            let spec_text = format!(
                "volume={gain_db:.2}dB:precision=float,aresample={AUDIO_RATE},\
                 aformat=sample_fmts=fltp:channel_layouts=stereo"
            );
            let graph = AudioGraph::new(&decoder, tb, &spec_text, Some(enc.frame_size()))?;
            let mut stream = output
                .add_stream(aac)
                .map_err(ffmpeg_error("add the audio stream"))?;
            stream.set_parameters(&enc);
            stream.set_time_base((1, AUDIO_RATE));
            Some(AudioLane {
                index,
                decoder,
                graph,
                encoder: enc,
                out_index: 1,
            })
        }
        None => None,
    };

    let mut header_options = ffmpeg::Dictionary::new();
    header_options.set("movflags", "+faststart");
    output
        .write_header_with(header_options)
        .map_err(ffmpeg_error("write the MP4 header"))?;
    let video_stream_tb = stream_time_base(&output, 0)?;
    let audio_stream_tb = match audio {
        Some(_) => Some(stream_time_base(&output, 1)?),
        None => None,
    };

    let video_out = (video_out_tb, frame_length(video_out_tb, fps));
    let mut decoded = frame::Video::empty();
    let mut done = 0.0f32;
    loop {
        let mut packet = Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(e) => return Err(corrupt(format!("demuxing stopped: {e}"))),
        }
        if packet.stream() == video_index {
            if let (Some(pts), Some(duration)) = (packet.pts().or(packet.dts()), duration) {
                let fraction = ((pts - start) as f64 / duration as f64).clamp(0.0, 1.0) as f32;
                if fraction >= done + 0.01 {
                    done = fraction;
                    progress(done);
                }
            }
            video_decoder
                .send_packet(&packet)
                .map_err(|e| corrupt(format!("video does not decode: {e}")))?;
            drain_video(
                &mut video_decoder,
                &mut decoded,
                &mut video_graph,
                &mut video_encoder,
                &mut output,
                video_out,
                video_stream_tb,
            )?;
        } else if let (Some(lane), Some(tb)) = (audio.as_mut(), audio_stream_tb) {
            if packet.stream() == lane.index {
                lane.decoder
                    .send_packet(&packet)
                    .map_err(|e| corrupt(format!("audio does not decode: {e}")))?;
                lane.drain(&mut output, tb)?;
            }
        }
    }
    video_decoder
        .send_eof()
        .map_err(|e| corrupt(format!("flushing the video decoder failed: {e}")))?;
    drain_video(
        &mut video_decoder,
        &mut decoded,
        &mut video_graph,
        &mut video_encoder,
        &mut output,
        video_out,
        video_stream_tb,
    )?;
    video_graph.flush()?;
    encode_filtered_video(
        &mut video_graph,
        &mut video_encoder,
        &mut output,
        video_out,
        video_stream_tb,
    )?;
    video_encoder
        .send_eof()
        .map_err(ffmpeg_error("flush the H.264 encoder"))?;
    write_packets(
        &mut video_encoder,
        &mut output,
        0,
        video_out,
        video_stream_tb,
    )?;
    if let (Some(lane), Some(tb)) = (audio.as_mut(), audio_stream_tb) {
        lane.finish(&mut output, tb)?;
    }
    output
        .write_trailer()
        .map_err(ffmpeg_error("finish the MP4 file"))?;
    progress(1.0);

    let mut changes = before.reasons.clone();
    if (width, height) != (before.width, before.height) {
        changes.push(format!(
            "scaled {}x{} -> {width}x{height}",
            before.width, before.height
        ));
    }
    if cap_fps {
        changes.push(format!("{} fps -> {}", fps_text(before.fps), fps_text(fps)));
    }
    if gain_db.abs() >= 0.05 {
        changes.push(format!("audio gain {gain_db:+.1} dB"));
    }
    Ok(Transcoded {
        width,
        height,
        fps,
        duration_ms: duration.and_then(|d| {
            let (num, den) = (
                i128::from(video_tb.numerator()),
                i128::from(video_tb.denominator()),
            );
            (num > 0 && den > 0)
                .then(|| u64::try_from(i128::from(d) * num * 1000 / den).ok())
                .flatten()
        }),
        loudness_before,
        gain_db,
        changes,
    })
}

/// One frame at `fps` in `tb` units (0 when that makes no sense).
fn frame_length(tb: Rational, fps: f64) -> i64 {
    let (num, den) = (f64::from(tb.numerator()), f64::from(tb.denominator()));
    if num <= 0.0 || den <= 0.0 || fps <= 0.0 {
        return 0;
    }
    (den / (num * fps)).round() as i64
}

/// The largest even-sided frame inside `max_w` x `max_h` with the aspect of
/// `w` x `h`; never larger than the source (only evened).
pub fn fit(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    let (w64, h64) = (u64::from(w.max(1)), u64::from(h.max(1)));
    let (mut ow, mut oh) = (w64, h64);
    if ow > u64::from(max_w) {
        ow = u64::from(max_w);
        oh = (h64 * ow + w64 / 2) / w64;
    }
    if oh > u64::from(max_h) {
        oh = u64::from(max_h);
        ow = (w64 * oh + h64 / 2) / h64;
    }
    let even = |v: u64| u32::try_from((v & !1).max(2)).unwrap_or(2);
    (even(ow), even(oh))
}

struct AudioLane {
    index: usize,
    decoder: decoder::Audio,
    graph: AudioGraph,
    encoder: encoder::Audio,
    out_index: usize,
}

impl AudioLane {
    fn drain(
        &mut self,
        output: &mut ffmpeg::format::context::Output,
        stream_tb: Rational,
    ) -> Result<(), MediaError> {
        let mut decoded = frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            self.graph.push(&decoded)?;
            self.encode_filtered(output, stream_tb)?;
        }
        Ok(())
    }

    fn encode_filtered(
        &mut self,
        output: &mut ffmpeg::format::context::Output,
        stream_tb: Rational,
    ) -> Result<(), MediaError> {
        let mut filtered = frame::Audio::empty();
        while self.graph.pull(&mut filtered) {
            self.encoder
                .send_frame(&filtered)
                .map_err(ffmpeg_error("encode audio"))?;
            write_packets(
                &mut self.encoder,
                output,
                self.out_index,
                ((1, AUDIO_RATE).into(), 0),
                stream_tb,
            )?;
        }
        Ok(())
    }

    fn finish(
        &mut self,
        output: &mut ffmpeg::format::context::Output,
        stream_tb: Rational,
    ) -> Result<(), MediaError> {
        self.decoder
            .send_eof()
            .map_err(|e| corrupt(format!("flushing the audio decoder failed: {e}")))?;
        self.drain(output, stream_tb)?;
        self.graph.flush()?;
        self.encode_filtered(output, stream_tb)?;
        self.encoder
            .send_eof()
            .map_err(ffmpeg_error("flush the AAC encoder"))?;
        write_packets(
            &mut self.encoder,
            output,
            self.out_index,
            ((1, AUDIO_RATE).into(), 0),
            stream_tb,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn drain_video(
    decoder: &mut decoder::Video,
    decoded: &mut frame::Video,
    graph: &mut VideoGraph,
    encoder: &mut encoder::Video,
    output: &mut ffmpeg::format::context::Output,
    encoder_tb: (Rational, i64),
    stream_tb: Rational,
) -> Result<(), MediaError> {
    while decoder.receive_frame(decoded).is_ok() {
        let ts = decoded.timestamp();
        decoded.set_pts(ts);
        graph.push(decoded)?;
        encode_filtered_video(graph, encoder, output, encoder_tb, stream_tb)?;
    }
    Ok(())
}

fn encode_filtered_video(
    graph: &mut VideoGraph,
    encoder: &mut encoder::Video,
    output: &mut ffmpeg::format::context::Output,
    encoder_tb: (Rational, i64),
    stream_tb: Rational,
) -> Result<(), MediaError> {
    let mut filtered = frame::Video::empty();
    while graph.pull(&mut filtered) {
        filtered.set_kind(picture::Type::None);
        encoder
            .send_frame(&filtered)
            .map_err(ffmpeg_error("encode video"))?;
        write_packets(encoder, output, 0, encoder_tb, stream_tb)?;
    }
    Ok(())
}

/// Sets the H.264 level libx264 writes and keeps to, which `ffmpeg-next` has
/// no setter for.
#[allow(unsafe_code, reason = "AVCodecContext's level has no safe setter")]
fn set_level(encoder: &mut encoder::video::Video, level: u32) {
    // SAFETY: the encoder's own live context, not yet opened; a plain
    // integer field.
    unsafe {
        (*encoder.as_mut_ptr()).level = i32::try_from(level).unwrap_or(42);
    }
}

/// Moves every packet the encoder has ready into the file.
///
/// `frame_length` (in `encoder_tb` units) fills in packet durations the
/// encoder leaves at 0, as the `ffmpeg` command line does: without them the
/// muxer cannot know how long the last frame lasts and the file's frame
/// rate comes out a frame too high.
fn write_packets(
    encoder: &mut encoder::Encoder,
    output: &mut ffmpeg::format::context::Output,
    index: usize,
    (encoder_tb, frame_length): (Rational, i64),
    stream_tb: Rational,
) -> Result<(), MediaError> {
    let mut packet = Packet::empty();
    while encoder.receive_packet(&mut packet).is_ok() {
        packet.set_stream(index);
        if packet.duration() <= 0 && frame_length > 0 {
            packet.set_duration(frame_length);
        }
        packet.rescale_ts(encoder_tb, stream_tb);
        packet
            .write_interleaved(output)
            .map_err(ffmpeg_error("write to the MP4 file"))?;
    }
    Ok(())
}

fn stream_time_base(
    output: &ffmpeg::format::context::Output,
    index: usize,
) -> Result<Rational, MediaError> {
    output
        .stream(index)
        .map(|s| s.time_base())
        .ok_or_else(|| MediaError::Ffmpeg(format!("output stream {index} is missing")))
}

fn video_decoder(stream: &ffmpeg::format::stream::Stream) -> Result<decoder::Video, MediaError> {
    let mut context = codec::context::Context::from_parameters(stream.parameters())
        .map_err(ffmpeg_error("set up the video decoder"))?;
    context.set_threading(codec::threading::Config::kind(
        codec::threading::Type::Frame,
    ));
    let mut decoder = context.decoder().video().map_err(|e| {
        MediaError::Unsupported(format!("video codec {:?}: {e}", stream.parameters().id()))
    })?;
    decoder.set_packet_time_base(stream.time_base());
    Ok(decoder)
}

/// A decoder for an audio stream.
pub(crate) fn audio_decoder(
    stream: &ffmpeg::format::stream::Stream,
) -> Result<decoder::Audio, MediaError> {
    let context = codec::context::Context::from_parameters(stream.parameters())
        .map_err(ffmpeg_error("set up the audio decoder"))?;
    let mut decoder = context.decoder().audio().map_err(|e| {
        MediaError::Unsupported(format!("audio codec {:?}: {e}", stream.parameters().id()))
    })?;
    decoder.set_packet_time_base(stream.time_base());
    Ok(decoder)
}

pub(crate) fn ffmpeg_error(doing: &'static str) -> impl Fn(ffmpeg::Error) -> MediaError {
    move |e| MediaError::Ffmpeg(format!("cannot {doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_keeps_aspect_and_even_sides() {
        assert_eq!(fit(3840, 2160, 1920, 1080), (1920, 1080));
        assert_eq!(fit(1280, 720, 1920, 1080), (1280, 720));
        assert_eq!(fit(1080, 1920, 1920, 1080), (608, 1080));
        assert_eq!(fit(641, 361, 1920, 1080), (640, 360));
        assert_eq!(fit(4000, 1000, 1920, 1080), (1920, 480));
    }
}
