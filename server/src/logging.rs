//! Logs of the `signage` binary: `tracing` events on standard error, as plain text (coloured
//! only on a terminal, and never with `NO_COLOR` set) or as JSON lines (`--log-format json`),
//! filtered by `RUST_LOG` or the command's default. Which events exist is each module's
//! business; where they go is decided here, once, by `main`.

use std::io::IsTerminal;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the event's fields.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` when set, else `default_filter` (an
/// `EnvFilter` directive such as `"warn,rumqttd=off"`). A second call changes nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        filter,
        colour,
        std::io::stderr,
    ));
}

/// The subscriber [`init`] installs, writing to `writer`.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    colour: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(colour).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn logged(format: LogFormat, colour: bool) -> String {
        let out = Captured::default();
        let sub = subscriber(format, EnvFilter::new("info"), colour, out.clone());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(screen = "bj-metro-xidan-s1", plays = 3, "batch stored");
            tracing::debug!("filtered out");
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn text_has_colour_only_when_asked() {
        let plain = logged(LogFormat::Text, false);
        assert!(plain.contains("INFO"), "{plain}");
        assert!(
            plain.contains("batch stored screen=\"bj-metro-xidan-s1\" plays=3"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(!plain.contains("filtered out"));
        assert!(logged(LogFormat::Text, true).contains('\x1b'));
    }

    #[test]
    fn json_is_one_object_per_line() {
        let text = logged(LogFormat::Json, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "batch stored");
        assert_eq!(v["screen"], "bj-metro-xidan-s1");
        assert_eq!(v["plays"], 3);
        assert_eq!(v["target"], "server::logging::tests");
        assert!(v["timestamp"].is_string());
        assert!(!text.contains('\x1b'), "never colour in JSON");
    }
}
