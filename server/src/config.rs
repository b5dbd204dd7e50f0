//! The server's typed configuration: the embedded defaults (`default-config.toml`), then a
//! file, then the environment, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::approval::ApprovalMode;
use crate::tls::TlsMode;

const DEFAULTS: &str = include_str!("default-config.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
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
}

/// Whether an emergency needs a second operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmergencyConfirm {
    Off,
    TwoPerson,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Partial {
    http: Option<SocketAddr>,
    embedded_broker: Option<SocketAddr>,
    mqtt_url: Option<String>,
    topic_prefix: Option<String>,
    shared_subscription: Option<bool>,
    schedule_ttl_hours: Option<u32>,
    approval: Option<ApprovalMode>,
    emergency_confirm: Option<EmergencyConfirm>,
    emergency_confirm_minutes: Option<u32>,
    dark_alert_minutes: Option<u32>,
    tls: Option<TlsMode>,
    tls_names: Option<Vec<String>>,
    mqtt_ca_file: Option<PathBuf>,
}

/// What the command line says, over the file and the environment.
#[derive(Debug, Default)]
pub struct Flags {
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

    pub fn load_with(file: Option<&Path>, flags: Flags) -> anyhow::Result<Config> {
        let mut c = Config::defaults();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
            let p: Partial = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
            c.apply(p);
        }
        let env = Partial {
            mqtt_url: std::env::var("SIGNAGE_MQTT_URL").ok(),
            http: std::env::var("SIGNAGE_HTTP")
                .ok()
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| anyhow::anyhow!("SIGNAGE_HTTP: {e}"))?,
            ..Partial::default()
        };
        c.apply(env);
        c.apply(Partial {
            mqtt_url: flags.mqtt_url,
            http: flags.http,
            tls: flags.tls,
            mqtt_ca_file: flags.mqtt_ca_file,
            ..Partial::default()
        });
        if let Some(url) = &c.mqtt_url {
            crate::broker::parse_mqtt_url(url).map_err(|e| anyhow::anyhow!(e))?;
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
        Ok(c)
    }

    fn apply(&mut self, p: Partial) {
        if let Some(v) = p.http {
            self.http = v;
        }
        if let Some(v) = p.embedded_broker {
            self.embedded_broker = v;
        }
        if p.mqtt_url.is_some() {
            self.mqtt_url = p.mqtt_url;
        }
        if let Some(v) = p.topic_prefix {
            self.topic_prefix = v;
        }
        if let Some(v) = p.shared_subscription {
            self.shared_subscription = v;
        }
        if let Some(v) = p.schedule_ttl_hours {
            self.schedule_ttl_hours = v;
        }
        if let Some(v) = p.approval {
            self.approval = v;
        }
        if let Some(v) = p.emergency_confirm {
            self.emergency_confirm = v;
        }
        if let Some(v) = p.dark_alert_minutes {
            self.dark_alert_minutes = v;
        }
        if let Some(v) = p.emergency_confirm_minutes {
            self.emergency_confirm_minutes = v;
        }
        if let Some(v) = p.tls {
            self.tls = v;
        }
        if let Some(v) = p.tls_names {
            self.tls_names = v;
        }
        if p.mqtt_ca_file.is_some() {
            self.mqtt_ca_file = p.mqtt_ca_file;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse() {
        let c = Config::defaults();
        assert_eq!(c.topic_prefix, "signage/v1");
        assert!(c.mqtt_url.is_none());
        assert_eq!(c.schedule_ttl(), chrono::TimeDelta::days(7));
        assert_eq!(c.approval, ApprovalMode::FourEyes);
        assert_eq!(c.emergency_confirm(), None);
    }

    #[test]
    fn file_and_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "http = \"127.0.0.1:9999\"\nshared_subscription = false\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), Some("mqtt://10.0.0.1:1884".into()), None).unwrap();
        assert_eq!(c.http.port(), 9999);
        assert!(!c.shared_subscription);
        assert_eq!(c.mqtt_url.as_deref(), Some("mqtt://10.0.0.1:1884"));
        std::fs::write(&f, "schedule_ttl_hours = 24\n").unwrap();
        let c = Config::load(Some(&f), None, None).unwrap();
        assert_eq!(c.schedule_ttl(), chrono::TimeDelta::hours(24));
        std::fs::write(&f, "schedule_ttl_hours = 1\n").unwrap();
        assert!(Config::load(Some(&f), None, None)
            .unwrap_err()
            .to_string()
            .contains("too short"));
        std::fs::write(&f, "approval = \"off\"\n").unwrap();
        let c = Config::load(Some(&f), None, None).unwrap();
        assert_eq!(c.approval, ApprovalMode::Off);
        std::fs::write(&f, "emergency_confirm = \"two-person\"\n").unwrap();
        let c = Config::load(Some(&f), None, None).unwrap();
        assert_eq!(c.emergency_confirm(), Some(chrono::TimeDelta::minutes(10)));
        std::fs::write(
            &f,
            "emergency_confirm = \"two-person\"\nemergency_confirm_minutes = 3\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), None, None).unwrap();
        assert_eq!(c.emergency_confirm(), Some(chrono::TimeDelta::minutes(3)));
        assert_eq!(Config::defaults().dark_alert_minutes, 15);
        std::fs::write(&f, "dark_alert_minutes = 5\n").unwrap();
        assert_eq!(
            Config::load(Some(&f), None, None)
                .unwrap()
                .dark_alert_minutes,
            5
        );
        std::fs::write(&f, "approval = \"two-eyes\"\n").unwrap();
        let e = Config::load(Some(&f), None, None).unwrap_err().to_string();
        assert!(e.contains("four-eyes") && e.contains("approval"), "{e}");
        std::fs::write(&f, "bogus = 1\n").unwrap();
        assert!(Config::load(Some(&f), None, None)
            .unwrap_err()
            .to_string()
            .contains("bogus"));
        assert!(Config::load(None, Some("http://x".into()), None).is_err());
    }

    #[test]
    fn tls_settings() {
        assert_eq!(Config::defaults().tls, TlsMode::Off);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load(Some(&f), None, None).map_err(|e| e.to_string())
        };
        assert_eq!(
            load("tls = \"self-signed\"\n").unwrap().tls,
            TlsMode::SelfSigned
        );
        assert_eq!(
            load("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n")
                .unwrap()
                .tls,
            TlsMode::Files {
                cert: "/c.pem".into(),
                key: "/k.pem".into(),
                ca: None,
            }
        );
        assert!(load("tls = \"on\"\n").unwrap_err().contains("tls"));
        assert!(load("[tls]\ncert = \"/c.pem\"\n")
            .unwrap_err()
            .contains("tls"));
        let flags = Flags {
            tls: Some(TlsMode::Off),
            ..Flags::default()
        };
        std::fs::write(&f, "tls = \"self-signed\"\n").unwrap();
        assert_eq!(
            Config::load_with(Some(&f), flags).unwrap().tls,
            TlsMode::Off
        );
    }
}
