//! The server's typed configuration: the embedded defaults (`default-config.toml`), then a
//! file, then the environment, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::approval::ApprovalMode;
use crate::tls::TlsMode;

const DEFAULTS: &str = include_str!("default-config.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store: a PostgreSQL database (`postgres://...`) that replicas share; unset, the
    /// embedded redb store in the data directory.
    #[serde(default)]
    pub store: Option<StoreUrl>,
    pub http: SocketAddr,
    pub embedded_broker: SocketAddr,
    #[serde(default)]
    pub mqtt_url: Option<String>,
    pub topic_prefix: String,
    pub shared_subscription: bool,
    /// How long a signed schedule document is accepted as new (see [`Config::schedule_ttl`]).
    pub schedule_ttl_hours: u32,
    /// `"four-eyes"`: staff's campaigns and creatives wait for a second person's approval;
    /// `"off"`: they are live at once.
    pub approval: ApprovalMode,
    /// `"two-person"`: a started emergency waits for a second operator's confirmation
    /// (within `emergency_confirm_minutes`) before it plays; `"off"`: it plays at once.
    pub emergency_confirm: EmergencyConfirm,
    pub emergency_confirm_minutes: u32,
    /// A screen offline, or silent since its last status, this many minutes is raised as
    /// dark to operators.
    pub dark_alert_minutes: u32,
    /// HTTPS on the HTTP address, or plain HTTP.
    pub tls: TlsMode,
    /// Host names or addresses a generated certificate is valid for, beside localhost,
    /// the loopback addresses and the HTTP address.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// A PEM file whose certificates alone are trusted for an `mqtts://` broker (default:
    /// the system's roots).
    #[serde(default)]
    pub mqtt_ca_file: Option<PathBuf>,
    /// Proof of play from a NATS queue group instead of the MQTT subscription: a
    /// comma-separated list of NATS server URLs (see [`Config::pop_source`]).
    #[serde(default)]
    pub nats_ingest: Option<String>,
    /// The kiosk video gate and loudness of uploads (`[media]`).
    pub media: MediaConfig,
    /// Proof-of-play retention (`[ledger]`).
    #[serde(default)]
    pub ledger: LedgerConfig,
}

/// A PostgreSQL URL. It may hold a password: `Debug` shows the database without it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL itself, password included (to connect with).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::postgres::shown_url(&self.0))
    }
}

/// `[ledger]`: how long raw proof-of-play batches stay in the live ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Days of raw batches kept live (by the UTC day of their first play); older ones are
    /// moved hourly into daily archive files. 0: kept forever, nothing archived.
    #[serde(default)]
    pub raw_retention_days: u32,
    /// Where archive files go (default DATA_DIR/archive).
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
}

/// `[media]`: what kiosks play and how loud creatives are (see `ingest`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// The highest H.264 profile kiosks decode: "baseline", "main" or "high".
    pub gate_max_profile: String,
    /// The highest H.264 level times ten (42 is 4.2).
    pub gate_max_level: u32,
    pub gate_max_width: u32,
    pub gate_max_height: u32,
    pub gate_max_fps: u32,
    /// Integrated loudness uploads are brought to (EBU R128), in LUFS.
    pub loudness_target_lufs: f64,
    /// What to do with a video off the loudness target by more than 1 LU.
    pub loudness: crate::ingest::LoudnessAction,
    /// What to do with a video or an animation that flashes more than three times in a
    /// second (WCAG 2.3.1).
    #[serde(default)]
    pub flash: crate::media_checks::FlashMode,
}

impl MediaConfig {
    /// The ingest policy, or what is wrong with the settings.
    pub fn policy(&self) -> anyhow::Result<crate::ingest::MediaPolicy> {
        let max_profile =
            media::H264Profile::from_name(&self.gate_max_profile).ok_or_else(|| {
                anyhow::anyhow!(
                    "media.gate_max_profile {:?} is not \"baseline\", \"main\" or \"high\"",
                    self.gate_max_profile
                )
            })?;
        anyhow::ensure!(
            (10..=62).contains(&self.gate_max_level),
            "media.gate_max_level {} is not an H.264 level times ten (10 to 62; 42 is 4.2)",
            self.gate_max_level
        );
        for (key, value, max) in [
            ("gate_max_width", self.gate_max_width, 8192),
            ("gate_max_height", self.gate_max_height, 8192),
            ("gate_max_fps", self.gate_max_fps, 240),
        ] {
            anyhow::ensure!(
                (2..=max).contains(&value),
                "media.{key} {value} is out of range (2 to {max})"
            );
        }
        anyhow::ensure!(
            (-70.0..=-5.0).contains(&self.loudness_target_lufs),
            "media.loudness_target_lufs {} is out of range (-70 to -5 LUFS)",
            self.loudness_target_lufs
        );
        Ok(crate::ingest::MediaPolicy {
            gate: media::VideoGate {
                max_profile,
                max_level: self.gate_max_level,
                max_width: self.gate_max_width,
                max_height: self.gate_max_height,
                max_fps: self.gate_max_fps,
            },
            loudness_target: media::LoudnessTarget {
                integrated_lufs: self.loudness_target_lufs,
                ..media::LoudnessTarget::default()
            },
            loudness: self.loudness,
            flash: self.flash,
            limits: media::Limits::default(),
        })
    }
}

/// Whether an emergency needs a second operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmergencyConfirm {
    Off,
    TwoPerson,
}

/// What the command line says, over the file and the environment.
#[derive(Debug, Default)]
pub struct Flags {
    /// `--store URL`.
    pub store: Option<String>,
    pub mqtt_url: Option<String>,
    pub http: Option<SocketAddr>,
    pub tls: Option<TlsMode>,
    pub mqtt_ca_file: Option<PathBuf>,
}

impl Config {
    /// A schedule's `expires_at` is its `issued_at` plus this; documents less than half of
    /// it from expiry are re-signed with a new version (on start and hourly).
    pub fn schedule_ttl(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::hours(i64::from(self.schedule_ttl_hours))
    }

    /// How long a second operator has to confirm an emergency; `None` when none is asked.
    pub fn emergency_confirm(&self) -> Option<chrono::TimeDelta> {
        (self.emergency_confirm == EmergencyConfirm::TwoPerson)
            .then(|| chrono::TimeDelta::minutes(i64::from(self.emergency_confirm_minutes)))
    }

    pub fn defaults() -> Config {
        toml::from_str(DEFAULTS).expect("the shipped default config parses")
    }

    pub fn load(
        file: Option<&Path>,
        mqtt_url: Option<String>,
        http: Option<SocketAddr>,
    ) -> anyhow::Result<Config> {
        Config::load_with(
            file,
            Flags {
                mqtt_url,
                http,
                ..Flags::default()
            },
        )
    }

    /// The shipped defaults, then `file`, then `SIGNAGE_*` variables (each key of
    /// [`Config`] upper-cased: `SIGNAGE_TOPIC_PREFIX`; values in TOML syntax, a bare word
    /// is a string), then `flags`; validated.
    pub fn load_with(file: Option<&Path>, flags: Flags) -> anyhow::Result<Config> {
        Config::load_from(file, &|name| std::env::var(name).ok(), flags)
    }

    /// [`Config::load_with`] reading the environment through `env` (tests pass a map).
    pub fn load_from(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: Flags,
    ) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = file {
            // Read here: figment takes a missing file for an empty one.
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
            figment = figment.merge(Toml::string(&text));
        }
        let mut from_env = Vec::new();
        for key in keys() {
            let name = env_name(key);
            if let Some(value) = env(&name) {
                let value: figment::value::Value = value
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
                figment = figment.merge(Serialized::default(key, value));
                from_env.push(*key);
            }
        }
        let flags = [
            ("store", flags.store.map(Into::into)),
            ("mqtt_url", flags.mqtt_url.map(Into::into)),
            ("http", flags.http.map(|a| a.to_string().into())),
            ("tls", flags.tls.as_ref().map(tls_value)),
            (
                "mqtt_ca_file",
                flags.mqtt_ca_file.map(|p| p.display().to_string().into()),
            ),
        ];
        let mut from_flags = Vec::new();
        for (key, value) in flags {
            if let Some(v) = value {
                figment = figment.merge(Serialized::default(key, v));
                from_flags.push(key);
            }
        }
        // Each error names its key and where the value in force came from.
        let c: Config = figment.extract().map_err(|e| {
            let errors: Vec<String> = e
                .into_iter()
                .map(|e| {
                    let key = e.path.iter().find(|p| keys().contains(&p.as_str()));
                    let from = match key.map(String::as_str) {
                        Some(k) if from_flags.contains(&k) => format!("flag of {k}"),
                        Some(k) if from_env.contains(&k) => env_name(k),
                        _ => match file {
                            Some(p) => format!("config {}", p.display()),
                            None => "the shipped defaults".to_owned(),
                        },
                    };
                    match key {
                        Some(k) => format!("{from}: {k}: {}", e.kind),
                        None => format!("{from}: {}", e.kind),
                    }
                })
                .collect();
            anyhow::anyhow!(errors.join("; "))
        })?;
        if let Some(url) = &c.mqtt_url {
            crate::broker::parse_mqtt_url(url).map_err(|e| anyhow::anyhow!(e))?;
        }
        if let Some(store) = &c.store {
            anyhow::ensure!(
                crate::store::postgres::is_url(store.expose()),
                "store {:?} is not a postgres:// URL (leave it out for the embedded store in \
                 the data directory)",
                store.expose()
            );
        }
        anyhow::ensure!(
            !c.topic_prefix.is_empty() && !c.topic_prefix.contains(['+', '#']),
            "topic_prefix {:?} is not a valid topic prefix",
            c.topic_prefix
        );
        anyhow::ensure!(
            c.dark_alert_minutes >= 1,
            "dark_alert_minutes {} is too short: at least 1",
            c.dark_alert_minutes
        );
        anyhow::ensure!(
            c.emergency_confirm_minutes >= 1,
            "emergency_confirm_minutes {} is too short: at least 1",
            c.emergency_confirm_minutes
        );
        anyhow::ensure!(
            c.schedule_ttl_hours >= 2,
            "schedule_ttl_hours {} is too short: at least 2 (documents are refreshed hourly)",
            c.schedule_ttl_hours
        );
        c.media.policy()?;
        c.pop_source()?;
        Ok(c)
    }

    /// Where proof of play is read from: a NATS queue group when `nats_ingest` names
    /// servers (their MQTT listeners carry the agents; the topic prefix must map to a
    /// NATS subject), else the MQTT subscription.
    pub fn pop_source(&self) -> anyhow::Result<crate::pop_source::PopSource> {
        let Some(list) = &self.nats_ingest else {
            return Ok(crate::pop_source::PopSource::Mqtt);
        };
        let nats = crate::pop_source::NatsIngest::parse(list)
            .map_err(|e| anyhow::anyhow!("nats_ingest: {e}"))?;
        anyhow::ensure!(
            self.mqtt_url.is_some(),
            "nats_ingest needs mqtt_url (the MQTT listener of a node of that NATS cluster): \
             the embedded broker's messages never reach NATS"
        );
        crate::pop_source::subject_filter(&self.topic_prefix)
            .map_err(|e| anyhow::anyhow!("topic_prefix with nats_ingest: {e}"))?;
        Ok(crate::pop_source::PopSource::Nats(nats))
    }
}

/// `tls` as it would be written in the file.
fn tls_value(tls: &TlsMode) -> figment::value::Value {
    let path = |p: &Path| figment::value::Value::from(p.display().to_string());
    match tls {
        TlsMode::Off => "off".into(),
        TlsMode::SelfSigned => "self-signed".into(),
        TlsMode::Files { cert, key, ca } => {
            let mut d = figment::value::Dict::new();
            d.insert("cert".into(), path(cert));
            d.insert("key".into(), path(key));
            if let Some(ca) = ca {
                d.insert("ca".into(), path(ca));
            }
            d.into()
        }
    }
}

/// The environment variable of a key: `SIGNAGE_` and the key upper-cased.
pub fn env_name(key: &str) -> String {
    format!("SIGNAGE_{}", key.to_ascii_uppercase())
}

/// The command-line flag of `serve` that sets a key, if any.
pub fn flag_of(key: &str) -> Option<&'static str> {
    match key {
        "store" => Some("--store"),
        "http" => Some("--http"),
        "mqtt_url" => Some("--mqtt-url"),
        "tls" => Some("--tls, --tls-cert/--tls-key/--tls-ca"),
        "mqtt_ca_file" => Some("--mqtt-ca-file"),
        _ => None,
    }
}

/// Every key of [`Config`], in its order (read from its `Deserialize`, so none is missed).
pub fn keys() -> &'static [&'static str] {
    struct Fields(&'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("fields only"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(serde::de::Error::custom("fields only"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields = Fields(&[]);
    let _ = Config::deserialize(&mut fields);
    fields.0
}

/// What each key means (the reference's text; the shipped defaults file says the same
/// with examples).
fn doc(key: &str) -> &'static str {
    match key {
        "store" => "Where the server keeps its state: a PostgreSQL URL, postgres://user[:password]@host:port/database, which several `signage serve` replicas can share (the data directory then keeps only this machine's files: server key, broker secret, admin token, uploads, a copy of the media; replicas get copies of the same key files). Unset: the embedded store in the data directory. The direct-store commands take the same `--store URL` beside `--data-dir`.",
        "http" => "The address of the HTTP API, media and dashboard.",
        "embedded_broker" => "Where the embedded MQTT broker listens when no mqtt_url is given.",
        "mqtt_url" => "An external broker instead of the embedded one: mqtt://host:port or mqtts://host:port.",
        "topic_prefix" => "The MQTT topic prefix of every screen's topics (provisioned agents get the same).",
        "shared_subscription" => "With an external broker, subscribe to proof of play through $share/signage-ingest/... so replicas split ingest.",
        "schedule_ttl_hours" => "Hours a signed schedule document stays acceptable as new (at least 2); documents within half of it from expiry are re-signed on start and hourly.",
        "approval" => "\"four-eyes\": staff's campaigns and creatives wait for a second person's approval; \"off\": they are live at once.",
        "emergency_confirm" => "\"two-person\": a started emergency waits for a second operator's confirmation; \"off\": it plays at once.",
        "emergency_confirm_minutes" => "How long a second operator has to confirm an emergency (at least 1).",
        "ledger" => "Proof-of-play retention: raw_retention_days (0, the default: raw batches stay in the live ledger forever; N: batches whose first play is more than N days old, UTC, are moved hourly into daily compressed files ledger-YYYY-MM-DD.zst, which `signage audit verify --archive DIR` checks; reports keep every play) and archive_dir (default DATA_DIR/archive).",
        "dark_alert_minutes" => "A screen offline, or silent since its last status, this many minutes (at least 1) is raised as dark to operators.",
        "tls" => "HTTPS on the HTTP address: \"off\", \"self-signed\" (generated into DATA_DIR/tls/), or a table {cert, key, ca} of PEM files.",
        "tls_names" => "More host names or addresses a generated certificate is valid for, e.g. [\"signage.example.org\"].",
        "mqtt_ca_file" => "A PEM file whose certificates alone are trusted for an mqtts:// broker (default: the system's roots).",
        "nats_ingest" => "Proof of play from a NATS cluster instead of the MQTT subscription: comma-separated NATS URLs (nats://[user:password@]host:port), e.g. \"nats://h1:4222,nats://h2:4222\"; replicas split ingest in the queue group signage-ingest on the subjects the cluster's MQTT listeners map the pop topics to; acks, schedules and commands stay on MQTT (mqtt_url: one of the cluster's MQTT listeners).",
        "media" => "The kiosk video gate and loudness of uploads: gate_max_profile (\"baseline\", \"main\", \"high\"), gate_max_level (H.264 level times ten), gate_max_width, gate_max_height, gate_max_fps; loudness_target_lufs (EBU R128); loudness: \"normalise\" (a gain while transcoding), \"warn\" (stored with a warning) or \"refuse\" a video more than 1 LU off the target; flash: \"refuse\" (a video or an animated image flashing more than 3 times in any second, WCAG 2.3.1, is refused) or \"warn\" (stored with a warning for the approver).",
        _ => "",
    }
}

/// `signage config reference`: every key with its environment variable, flag, default and
/// meaning, as Markdown (docs/config.md is this output).
pub fn reference() -> String {
    let defaults: toml::Table =
        toml::from_str(DEFAULTS).expect("the shipped default config parses");
    let mut out = String::from(
        "# signage server configuration\n\n\
         Generated by `signage config reference`. Each key is read from, in order (a later \
         one wins): the shipped defaults, the file given to `signage serve --config FILE`, \
         the environment variable `SIGNAGE_<KEY>` (its value in TOML syntax; a bare word is \
         a string), then the command-line flag where there is one.\n\n\
         | key | environment | flag | default | meaning |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for key in keys() {
        let default = defaults
            .get(*key)
            .map_or_else(|| "(unset)".to_owned(), |v| format!("`{v}`"));
        out.push_str(&format!(
            "| `{key}` | `{}` | {} | {default} | {} |\n",
            env_name(key),
            flag_of(key).map_or_else(|| "-".to_owned(), |f| format!("`{f}`")),
            doc(key).replace('|', "\\|"),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
