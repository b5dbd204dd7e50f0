//! FFmpeg filter graphs for transcoding: `buffer -> scale, fps, format -> buffersink`
//! for pictures and `abuffer -> volume, aresample, aformat -> abuffersink` for sound (the
//! same filters the `ffmpeg` command line runs, so the bench compares like with like).

use ffmpeg_next as ffmpeg;

use ffmpeg::{decoder, filter, frame, Rational};

use crate::transcode::ffmpeg_error;
use crate::MediaError;

/// `abuffer -> spec -> abuffersink`, optionally cutting the output into
/// frames of a fixed number of samples (what the AAC encoder takes).
pub(crate) struct AudioGraph {
    graph: filter::Graph,
}

impl AudioGraph {
    pub(crate) fn new(
        decoder: &decoder::Audio,
        time_base: Rational,
        spec: &str,
        frame_size: Option<u32>,
    ) -> Result<Self, MediaError> {
        let mut layout = decoder.channel_layout().bits();
        if layout == 0 {
            layout = ffmpeg::ChannelLayout::default(i32::from(decoder.channels())).bits();
        }
        let args = format!(
            "time_base={}/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{layout:x}",
            time_base.numerator(),
            time_base.denominator().max(1),
            decoder.rate(),
            decoder.format().name(),
        );
        let mut graph = filter::Graph::new();
        graph
            .add(&filter_named("abuffer")?, "in", &args)
            .map_err(ffmpeg_error("set up the audio filter input"))?;
        graph
            .add(&filter_named("abuffersink")?, "out", "")
            .map_err(ffmpeg_error("set up the audio filter output"))?;
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(spec))
            .map_err(ffmpeg_error("set up the audio filters"))?;
        graph
            .validate()
            .map_err(ffmpeg_error("set up the audio filters"))?;
        if let Some(size) = frame_size.filter(|&s| s > 0) {
            sink(&mut graph)?.sink().set_frame_size(size);
        }
        Ok(AudioGraph { graph })
    }

    pub(crate) fn push(&mut self, frame: &frame::Audio) -> Result<(), MediaError> {
        source(&mut self.graph)?
            .source()
            .add(frame)
            .map_err(ffmpeg_error("filter audio"))
    }

    pub(crate) fn flush(&mut self) -> Result<(), MediaError> {
        source(&mut self.graph)?
            .source()
            .flush()
            .map_err(ffmpeg_error("flush the audio filters"))
    }

    /// The next filtered frame, if one is ready.
    pub(crate) fn pull(&mut self, frame: &mut frame::Audio) -> bool {
        match self.graph.get("out") {
            Some(mut out) => out.sink().frame(frame).is_ok(),
            None => false,
        }
    }
}

/// `buffer -> scale, fps, format=yuv420p -> buffersink`.
pub(crate) struct VideoGraph {
    graph: filter::Graph,
}

impl VideoGraph {
    pub(crate) fn new(
        decoder: &decoder::Video,
        time_base: Rational,
        width: u32,
        height: u32,
        cap_fps: Option<u32>,
    ) -> Result<Self, MediaError> {
        let aspect = decoder.aspect_ratio();
        let (sar_n, sar_d) = if aspect.numerator() > 0 && aspect.denominator() > 0 {
            (aspect.numerator(), aspect.denominator())
        } else {
            (1, 1)
        };
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={sar_n}/{sar_d}",
            decoder.width(),
            decoder.height(),
            ffmpeg::ffi::AVPixelFormat::from(decoder.format()) as i32,
            time_base.numerator(),
            time_base.denominator().max(1),
        );
        let mut spec = format!("scale={width}:{height}:flags=bicubic");
        if let Some(fps) = cap_fps {
            spec.push_str(&format!(",fps={fps}"));
        }
        spec.push_str(",format=yuv420p,setsar=1");
        let mut graph = filter::Graph::new();
        graph
            .add(&filter_named("buffer")?, "in", &args)
            .map_err(ffmpeg_error("set up the video filter input"))?;
        graph
            .add(&filter_named("buffersink")?, "out", "")
            .map_err(ffmpeg_error("set up the video filter output"))?;
        graph
            .output("in", 0)
            .and_then(|p| p.input("out", 0))
            .and_then(|p| p.parse(&spec))
            .map_err(ffmpeg_error("set up the video filters"))?;
        graph
            .validate()
            .map_err(ffmpeg_error("set up the video filters"))?;
        Ok(VideoGraph { graph })
    }

    pub(crate) fn time_base(&mut self) -> Rational {
        self.graph
            .get("out")
            .map(|mut out| out.sink().time_base())
            .unwrap_or(Rational::new(1, 90_000))
    }

    /// The output frame rate as a fraction.
    pub(crate) fn frame_rate(&self, fps: f64) -> Rational {
        let milli = (fps * 1000.0).round() as i32;
        Rational::new(milli.max(1), 1000).reduce()
    }

    pub(crate) fn push(&mut self, frame: &frame::Video) -> Result<(), MediaError> {
        source(&mut self.graph)?
            .source()
            .add(frame)
            .map_err(ffmpeg_error("filter video"))
    }

    pub(crate) fn flush(&mut self) -> Result<(), MediaError> {
        source(&mut self.graph)?
            .source()
            .flush()
            .map_err(ffmpeg_error("flush the video filters"))
    }

    pub(crate) fn pull(&mut self, frame: &mut frame::Video) -> bool {
        match self.graph.get("out") {
            Some(mut out) => out.sink().frame(frame).is_ok(),
            None => false,
        }
    }
}

fn source(graph: &mut filter::Graph) -> Result<filter::Context, MediaError> {
    graph
        .get("in")
        .ok_or_else(|| MediaError::Ffmpeg("the filter graph has no input".into()))
}

fn sink(graph: &mut filter::Graph) -> Result<filter::Context, MediaError> {
    graph
        .get("out")
        .ok_or_else(|| MediaError::Ffmpeg("the filter graph has no output".into()))
}

fn filter_named(name: &str) -> Result<filter::Filter, MediaError> {
    filter::find(name).ok_or_else(|| MediaError::Unsupported(format!("FFmpeg filter {name}")))
}
