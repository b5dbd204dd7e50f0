//! The command line's arguments: every subcommand and flag, as clap parses them. What each
//! does is in the parent module and its siblings.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use super::{ledger, store};

#[derive(Debug, Parser)]
#[command(
    name = "signage",
    version,
    about = "Schedules public-service ads onto city screens"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
    /// Log lines as text (coloured only on a terminal) or as JSON lines.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub(super) log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Runs the built-in Beijing scenario end to end and prints plays per venue.
    Demo {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        keep_running: bool,
        #[arg(long, default_value = "2023-12-20T06:00:00+08:00", value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, default_value = "2023-12-20T12:00:00+08:00", value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Virtual seconds per real second at most (default: as fast as the agents go).
        #[arg(long)]
        speed: Option<f64>,
        /// Another scenario directory (default: the Beijing one built in).
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
    /// Runs the server: embedded broker unless --mqtt-url, HTTP, store.
    Serve {
        /// This machine's directory: the embedded store, or with --store the server's key,
        /// tokens, uploads and a copy of the media.
        #[arg(long)]
        data_dir: PathBuf,
        /// A PostgreSQL database to keep the state in (postgres://user@host:port/db),
        /// shared by replicas; the config's `store` (also SIGNAGE_STORE).
        #[arg(long)]
        store: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        mqtt_url: Option<String>,
        #[arg(long)]
        http: Option<SocketAddr>,
        #[command(flatten)]
        tls: TlsFlags,
    },
    /// Loads a scenario directory as one revision of the catalogue, all or nothing.
    Import {
        dir: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Archive campaigns, decommission screens and retire creatives that the scenario
        /// leaves out, instead of refusing the import.
        #[arg(long)]
        archive_missing: bool,
    },
    /// Screens: provisioning.
    Screens {
        #[command(subcommand)]
        command: ScreensCommand,
    },
    /// The planned plays over a window: of a scenario directory, or of the live catalogue
    /// (with the emergencies operators started).
    Plan {
        /// A scenario directory instead of a store or server.
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        /// Only this screen (repeat for more).
        #[arg(long = "screen")]
        screens: Vec<String>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Csv)]
        format: PlanFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Why a slot plays what it plays.
    Explain {
        /// A scenario directory instead of a store or server.
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        screen: String,
        /// Any instant inside the slot (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        at: DateTime<Utc>,
    },
    /// The real server and one real agent per screen on a virtual clock.
    Simulate {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, value_parser = parse_time)]
        to: DateTime<Utc>,
        #[arg(long)]
        data_dir: PathBuf,
        /// Virtual seconds per real second at most (default: as fast as the agents go).
        #[arg(long)]
        speed: Option<f64>,
    },
    /// Planned against delivered, and the plays export.
    Report {
        #[arg(value_enum)]
        what: ReportKind,
        #[command(flatten)]
        target: Target,
        /// Window start (RFC 3339); default: the last simulated window, else 24 hours
        /// before --to.
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// Window end (RFC 3339); default: the last simulated window, else the next whole
        /// hour.
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        /// Only this venue.
        #[arg(long)]
        venue: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// Ledger audit.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The proof-of-play ledger's retention.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The change log: every revision of the catalogue and users, oldest first.
    Changes {
        #[command(flatten)]
        target: Target,
        /// Only changes of this kind of entity (venue, screen, creative, campaign,
        /// emergency, user).
        #[arg(long)]
        entity: Option<String>,
        /// Only changes of this id.
        #[arg(long)]
        id: Option<String>,
    },
    /// The MQTT broker: a Mosquitto configuration for the fleet.
    Broker {
        #[command(subcommand)]
        command: BrokerCommand,
    },
    /// Users and their API tokens.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Campaigns' review: submit, approve or reject (on a running server).
    Campaigns {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// Creatives: add (upload) files, and their review: submit, approve or reject (on a
    /// running server).
    Creatives {
        #[command(subcommand)]
        command: CreativesCommand,
    },
    /// Emergency takeovers (start and end on a running server).
    Emergency {
        #[command(subcommand)]
        command: EmergencyCommand,
    },
    /// The store itself: copy one into PostgreSQL or back.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// The server's configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Scenario tools.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Media tools: what the server does to creatives, on files.
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum MediaCommand {
    /// Makes a still's rendition at an exact size, as the server does for a screen: a JPEG
    /// of WIDTH x HEIGHT (fit inside on the background, or --fill with a centre crop).
    Rendition {
        /// The still (JPEG, PNG, WebP, GIF).
        input: PathBuf,
        /// Where to write the JPEG.
        output: PathBuf,
        #[arg(long)]
        width: u32,
        #[arg(long)]
        height: u32,
        /// Fill the size with a centre crop instead of fitting inside.
        #[arg(long, conflicts_with = "background")]
        fill: bool,
        /// The background behind a fitted picture, #rrggbb.
        #[arg(long, default_value = "#000000")]
        background: String,
    },
    /// Transcodes a video into the default kiosk gate as an upload is (libx264 High 4.2,
    /// at most 1920x1080 and 30 fps, AAC normalised to -23 LUFS, fast-start MP4) and
    /// prints the seconds of video transcoded per second (scripts/bench-transcode.sh).
    Transcode {
        input: PathBuf,
        output: PathBuf,
        /// Keep the audio's level (no loudness pass).
        #[arg(long)]
        no_loudness: bool,
    },
}

/// Where a command reads or changes the server's state: a running server through its
/// API, or the store directly when no server holds it.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Target {
    /// A running server's URL, e.g. http://127.0.0.1:8080 (also SIGNAGE_SERVER).
    #[arg(long, env = "SIGNAGE_SERVER")]
    pub(super) server: Option<String>,
    /// A file holding your API token (the first admin's is DATA_DIR/admin.token; also
    /// SIGNAGE_TOKEN_FILE).
    #[arg(long, env = "SIGNAGE_TOKEN_FILE")]
    pub(super) token_file: Option<PathBuf>,
    /// The store's data directory, when no server holds it (wins over --server).
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
    /// With --data-dir: the server's PostgreSQL database (postgres://user@host:port/db),
    /// the data directory being its local one (server key, tokens, media).
    #[arg(long, requires = "data_dir")]
    pub(super) store: Option<String>,
    /// For an https:// server: trust the certificates in this PEM file alone, e.g. a
    /// self-signed server's DATA_DIR/tls/ca.pem (also SIGNAGE_CA_FILE).
    #[arg(long, env = "SIGNAGE_CA_FILE")]
    pub(super) ca_file: Option<PathBuf>,
}

/// `serve`'s transport security, over the config file's.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct TlsFlags {
    /// HTTPS: `self-signed` (a CA and certificate generated into DATA_DIR/tls/ on first use
    /// and reused) or `off` (plain HTTP).
    #[arg(long, value_parser = crate::tls::TlsMode::parse, conflicts_with = "tls_cert")]
    pub(super) tls: Option<crate::tls::TlsMode>,
    /// HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub(super) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub(super) tls_key: Option<PathBuf>,
    /// The CA (PEM) that signed --tls-cert, for provisioned agents to pin (default: they
    /// trust their system's roots).
    #[arg(long, requires = "tls_cert")]
    pub(super) tls_ca: Option<PathBuf>,
    /// For an mqtts:// broker: trust the certificates in this PEM file alone.
    #[arg(long)]
    pub(super) mqtt_ca_file: Option<PathBuf>,
}

impl TlsFlags {
    pub(super) fn mode(&self) -> Option<crate::tls::TlsMode> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsMode::Files {
                cert: cert.clone(),
                key: key.clone(),
                ca: self.tls_ca.clone(),
            }),
            _ => self.tls.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Prints every setting (Markdown): its environment variable, flag, default and meaning.
    Reference,
}

#[derive(Debug, Subcommand)]
pub(super) enum ScreensCommand {
    /// Makes a new key for a screen and writes the agent config (keys included); older
    /// keys stay valid for the screen's past.
    Provision {
        id: String,
        #[command(flatten)]
        target: Target,
        /// Where to write the config (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// The broker URL agents use (default: the server's own, or mqtt://127.0.0.1:1883
        /// with --data-dir).
        #[arg(long)]
        mqtt_url: Option<String>,
        /// The HTTP URL agents download media from (default: the server's own, or
        /// http://127.0.0.1:8080 with --data-dir).
        #[arg(long)]
        server_url: Option<String>,
        /// With --data-dir: the server's config file, whose topic prefix, broker and HTTP
        /// address the agent config carries (with `SIGNAGE_*` over it, as `serve` reads it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The four-eyes review of a campaign or creative (design.md, "Approval").
#[derive(Debug, Subcommand)]
pub(super) enum ReviewCommand {
    /// Submits a draft for approval (staff).
    Submit {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Approves a submitted version (an approver who did not submit it); it plays.
    Approve {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Rejects a submitted version with a reason (an approver who did not submit it).
    Reject {
        id: String,
        #[command(flatten)]
        target: Target,
        /// Why; shown with the campaign or creative.
        #[arg(long, required = true)]
        reason: String,
    },
}

/// `signage creatives ...`: uploads and the review.
#[derive(Debug, Subcommand)]
pub(super) enum CreativesCommand {
    /// Uploads files as creatives, with a progress bar for the bytes sent and then the
    /// server's processing (checks, transcoding), and prints each check's verdict. A
    /// refused file is named with the check that refused it (exit 1); the next file is
    /// still sent.
    Add {
        /// The files (images or videos).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// The creative's id (default: the file name without its extension); only with
        /// one file.
        #[arg(long)]
        id: Option<String>,
        /// A title shown to staff.
        #[arg(long)]
        title: Option<String>,
        /// Seconds it plays in a slot (required for stills; videos default to their
        /// length).
        #[arg(long)]
        duration: Option<u32>,
    },
    #[command(flatten)]
    Review(ReviewCommand),
}

#[derive(Debug, Subcommand)]
pub(super) enum BrokerCommand {
    /// Writes mosquitto.conf, passwd (the server and every provisioned screen in service)
    /// and acl (each screen only its own topics) into --out.
    MosquittoConfig {
        #[command(flatten)]
        target: Target,
        /// The directory to write the three files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The port Mosquitto listens on.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// With --data-dir: the server's config file, for its topic prefix (with
        /// `SIGNAGE_*` over it, as `serve` reads it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum EmergencyCommand {
    /// Starts a takeover now: its creatives play from each targeted screen's next slot.
    Start {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// A creative already in the catalogue (repeat for more).
        #[arg(long = "creative", required = true)]
        creatives: Vec<String>,
        /// Only venues of this OpenOOH type (repeat for more).
        #[arg(long = "venue-type")]
        venue_types: Vec<String>,
        /// Only this district (repeat for more).
        #[arg(long = "district")]
        districts: Vec<String>,
        /// Only this screen (repeat for more).
        #[arg(long = "screen")]
        screens: Vec<String>,
        /// When it ends by itself (default: when ended).
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
    },
    /// Ends a takeover now: the next slot plays the normal rotation.
    End {
        #[command(flatten)]
        target: Target,
        id: String,
    },
    /// Every takeover, active or ended.
    List {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Re-checks every signature and chain in the ledger, and every play against the
    /// schedule document it names.
    Verify {
        #[command(flatten)]
        target: Target,
        /// Also re-verify the archive files in this directory (from `signage ledger
        /// archive`; usually DATA_DIR/archive) and their chains into the live ledger. Needs
        /// --data-dir.
        #[arg(long)]
        archive: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum LedgerCommand {
    /// Moves proof-of-play batches dated before a day (UTC, of a batch's first play) out of
    /// the live ledger into daily compressed files, ledger-YYYY-MM-DD.zst, each written and
    /// synced before its batches are deleted. Reports keep every play (rollups stay).
    /// Needs --data-dir, with the server stopped.
    Archive {
        #[command(flatten)]
        target: Target,
        /// Archive batches dated before this day (YYYY-MM-DD).
        #[arg(long, conflicts_with = "keep_days", value_parser = ledger::parse_day)]
        before: Option<chrono::NaiveDate>,
        /// Or: keep this many days live (today, UTC, less N).
        #[arg(long)]
        keep_days: Option<u32>,
        /// Where the files go (default DATA_DIR/archive).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum UsersCommand {
    /// Adds a user; its API token is printed once, alone on the last line. With
    /// --data-dir it works before the first `serve`.
    Add {
        name: String,
        /// admin, staff, approver, operator or auditor (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A file holding the user's dashboard password (one line; at least 10 characters).
        #[arg(long)]
        password_file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Sets a user's dashboard password (and ends the user's sessions).
    Passwd {
        name: String,
        /// A file holding the new password (one line; at least 10 characters).
        #[arg(long)]
        password_file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ScenarioCommand {
    /// Writes a city-sized scenario: the Beijing scenario's venues, screens, campaigns and
    /// media, plus generated venues and screens across the 16 districts (deterministic
    /// from the seed).
    Generate {
        /// Venues in all (at least the base scenario's 42).
        #[arg(long)]
        venues: usize,
        /// Screens in all (at least one per venue).
        #[arg(long)]
        screens: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A new or empty directory.
        #[arg(long)]
        out: PathBuf,
        /// The base scenario (default: the Beijing one shipped here).
        #[arg(long)]
        base: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum BenchCommand {
    /// Plans a scenario's window to /dev/null as CSV and prints slots per second.
    Plan {
        /// A scenario directory (default: the Beijing one built in).
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[arg(long, default_value = "2023-12-17T00:00:00+08:00", value_parser = parse_time)]
        from: DateTime<Utc>,
        #[arg(long, default_value = "2023-12-24T00:00:00+08:00", value_parser = parse_time)]
        to: DateTime<Utc>,
        #[arg(long, default_value_t = 5)]
        runs: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum PlanFormat {
    Csv,
    Table,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ReportFormat {
    Csv,
    Json,
    Table,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ReportKind {
    Plays,
    Venues,
    Screens,
    Campaigns,
    Creatives,
}

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}
