//! The server config's tests: shipped defaults, files, environment and flags in their order,
//! and each bad setting refused naming its key.

use super::*;

#[test]
fn shipped_defaults_parse() {
    let c = Config::defaults();
    assert_eq!(c.topic_prefix, "signage/v1");
    assert!(c.mqtt_url.is_none());
    assert_eq!(c.schedule_ttl(), chrono::TimeDelta::days(7));
    assert_eq!(c.approval, ApprovalMode::FourEyes);
    assert_eq!(c.emergency_confirm(), None);
    let policy = c.media.policy().unwrap();
    assert_eq!(policy, crate::ingest::MediaPolicy::default());
}

#[test]
fn the_store_is_a_postgres_url_or_unset() {
    assert_eq!(Config::defaults().store, None);
    let load = |store: &str| {
        let flags = Flags {
            store: Some(store.into()),
            ..Flags::default()
        };
        Config::load_from(None, &|_| None, flags)
    };
    assert!(load("postgresql://u@h/db").is_ok());
    let e = load("/var/lib/signage").unwrap_err().to_string();
    assert!(e.contains("is not a postgres:// URL"), "{e}");
    let env = |n: &str| (n == "SIGNAGE_STORE").then(|| "postgres://u@h/db".to_owned());
    let c = Config::load_from(None, &env, Flags::default()).unwrap();
    assert_eq!(c.store.unwrap().expose(), "postgres://u@h/db");
}

#[test]
fn media_settings() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    let load = |text: &str| {
        std::fs::write(&f, text).unwrap();
        Config::load(Some(&f), None, None).map_err(|e| e.to_string())
    };
    let c = load("[media]\nloudness = \"refuse\"\ngate_max_fps = 25\n").unwrap();
    assert_eq!(c.media.loudness, crate::ingest::LoudnessAction::Refuse);
    assert_eq!(c.media.policy().unwrap().gate.max_fps, 25);
    assert_eq!(c.media.gate_max_width, 1920, "the rest from the defaults");
    assert!(load("[media]\ngate_max_profile = \"high10\"\n")
        .unwrap_err()
        .contains("gate_max_profile"));
    assert!(load("[media]\nloudness = \"quiet\"\n")
        .unwrap_err()
        .contains("normalise"));
    assert!(load("[media]\nloudness_target_lufs = 3.0\n")
        .unwrap_err()
        .contains("loudness_target_lufs"));
}

#[test]
fn ledger_retention_settings() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    let load = |text: &str| {
        std::fs::write(&f, text).unwrap();
        Config::load(Some(&f), None, None).map_err(|e| e.to_string())
    };
    assert_eq!(Config::defaults().ledger, LedgerConfig::default());
    let c = load("[ledger]\nraw_retention_days = 30\narchive_dir = \"/srv/a\"\n").unwrap();
    assert_eq!(c.ledger.raw_retention_days, 30);
    assert_eq!(c.ledger.archive_dir, Some(PathBuf::from("/srv/a")));
    let e = load("[ledger]\nraw_retention_days = -1\n").unwrap_err();
    assert!(e.contains("ledger") && e.contains("expected u32"), "{e}");
    let e = load("[ledger]\nretention = 3\n").unwrap_err();
    assert!(e.contains("retention"), "{e}");
}

#[test]
fn media_checks_refuse_by_default_and_may_warn() {
    use crate::media_checks::FlashMode;
    assert_eq!(Config::defaults().media.flash, FlashMode::Refuse);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "[media]\nflash = \"warn\"\n").unwrap();
    let c = Config::load(Some(&f), None, None).unwrap();
    assert_eq!(c.media.flash, FlashMode::Warn);
    let env = |name: &str| (name == "SIGNAGE_MEDIA").then(|| "{flash=\"warn\"}".to_owned());
    let c = Config::load_from(None, &env, Flags::default()).unwrap();
    assert_eq!(c.media.flash, FlashMode::Warn);
    std::fs::write(&f, "[media]\nflash = \"maybe\"\n").unwrap();
    let e = Config::load(Some(&f), None, None).unwrap_err().to_string();
    assert!(e.contains("media") && e.contains("maybe"), "{e}");
}

#[test]
fn nats_ingest_chooses_the_pop_source() {
    use crate::pop_source::PopSource;
    assert_eq!(Config::defaults().pop_source().unwrap(), PopSource::Mqtt);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    let load = |text: &str| {
        std::fs::write(&f, text).unwrap();
        Config::load_from(Some(&f), &|_| None, Flags::default())
    };
    let e = load("nats_ingest = \"nats://h1:4222\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("nats_ingest needs mqtt_url"), "{e}");
    let c =
        load("nats_ingest = \"nats://h1:4222,nats://h2:4222\"\nmqtt_url = \"mqtt://h1:1883\"\n")
            .unwrap();
    match c.pop_source().unwrap() {
        PopSource::Nats(n) => assert_eq!(n.hosts(), ["h1:4222", "h2:4222"]),
        other => panic!("{other:?}"),
    }
    let e = load("nats_ingest = \"\"\n").unwrap_err().to_string();
    assert!(
        e.contains("nats_ingest") && e.contains("no NATS server"),
        "{e}"
    );
    let e = load(
        "nats_ingest = \"nats://h1:4222\"\nmqtt_url = \"mqtt://h1:1883\"\ntopic_prefix = \"/x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("topic_prefix") && e.contains("empty level"),
        "{e}"
    );
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

/// Defaults, then the file, then `SIGNAGE_*`, then flags: each layer wins over the
/// ones before it, for every key.
#[test]
fn environment_layers_between_file_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(
        &f,
        "http = \"127.0.0.1:9999\"\ntopic_prefix = \"file/v1\"\nschedule_ttl_hours = 48\n",
    )
    .unwrap();
    let vars: std::collections::HashMap<&str, &str> = [
        ("SIGNAGE_HTTP", "127.0.0.1:7000"),
        ("SIGNAGE_TOPIC_PREFIX", "city/v2"),
        ("SIGNAGE_SHARED_SUBSCRIPTION", "false"),
        (
            "SIGNAGE_TLS_NAMES",
            "[\"signage.example.org\", \"10.0.0.5\"]",
        ),
        ("SIGNAGE_APPROVAL", "off"),
        ("SIGNAGE_EMERGENCY_CONFIRM", "two-person"),
        ("SIGNAGE_EMERGENCY_CONFIRM_MINUTES", "4"),
        ("SIGNAGE_EMBEDDED_BROKER", "127.0.0.1:2883"),
        ("SIGNAGE_MQTT_URL", "mqtt://10.0.0.1:1884"),
        ("SIGNAGE_TLS", "self-signed"),
        ("SIGNAGE_MQTT_CA_FILE", "/etc/signage/ca.pem"),
        ("SIGNAGE_WEB_DIR", "/not/a/config/key"),
    ]
    .into();
    let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());
    let c = Config::load_from(Some(&f), &env, Flags::default()).unwrap();
    assert_eq!(c.http.port(), 7000, "the environment over the file");
    assert_eq!(c.topic_prefix, "city/v2");
    assert_eq!(c.schedule_ttl_hours, 48, "the file over the defaults");
    assert!(!c.shared_subscription);
    assert_eq!(c.tls_names, ["signage.example.org", "10.0.0.5"]);
    assert_eq!(c.approval, ApprovalMode::Off);
    assert_eq!(c.emergency_confirm(), Some(chrono::TimeDelta::minutes(4)));
    assert_eq!(c.embedded_broker.port(), 2883);
    assert_eq!(c.mqtt_url.as_deref(), Some("mqtt://10.0.0.1:1884"));
    assert_eq!(c.tls, TlsMode::SelfSigned);
    assert_eq!(c.mqtt_ca_file, Some(PathBuf::from("/etc/signage/ca.pem")));
    // Flags over the environment.
    let flags = Flags {
        store: Some("postgres://signage:hunter2@db:5432/signage".into()),
        http: Some("127.0.0.1:6000".parse().unwrap()),
        mqtt_url: Some("mqtt://10.0.0.2:1885".into()),
        tls: Some(TlsMode::Files {
            cert: "/c.pem".into(),
            key: "/k.pem".into(),
            ca: None,
        }),
        mqtt_ca_file: Some("/other.pem".into()),
    };
    let c = Config::load_from(Some(&f), &env, flags).unwrap();
    assert_eq!(c.http.port(), 6000);
    assert_eq!(c.mqtt_url.as_deref(), Some("mqtt://10.0.0.2:1885"));
    assert!(matches!(c.tls, TlsMode::Files { .. }));
    assert_eq!(c.mqtt_ca_file, Some(PathBuf::from("/other.pem")));
    let store = c.store.as_ref().unwrap();
    assert_eq!(store.expose(), "postgres://signage:hunter2@db:5432/signage");
    let shown = format!("{c:?}");
    assert!(
        shown.contains("postgres://signage@db:5432/signage"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    // A bad value is named with its variable.
    let bad = |name: &'static str, value: &'static str| {
        let env = move |n: &str| (n == name).then(|| value.to_owned());
        Config::load_from(None, &env, Flags::default())
            .unwrap_err()
            .to_string()
    };
    let e = bad("SIGNAGE_SCHEDULE_TTL_HOURS", "a week");
    assert!(
        e.contains("SIGNAGE_SCHEDULE_TTL_HOURS") && e.contains("schedule_ttl_hours"),
        "{e}"
    );
    let e = bad("SIGNAGE_APPROVAL", "two-eyes");
    assert!(
        e.contains("SIGNAGE_APPROVAL") && e.contains("four-eyes"),
        "{e}"
    );
    let e = bad("SIGNAGE_HTTP", "localhost");
    assert!(e.contains("SIGNAGE_HTTP"), "{e}");
    assert!(bad("SIGNAGE_TOPIC_PREFIX", "a/#").contains("topic_prefix"));
}

/// Every key is in the reference, with its variable, and docs/config.md is the
/// reference as generated (run `signage config reference > docs/config.md`).
#[test]
fn the_reference_lists_every_key() {
    let keys = keys();
    assert!(keys.len() >= 12, "{keys:?}");
    let text = reference();
    for key in keys {
        assert!(!doc(key).is_empty(), "{key} has no doc");
        assert!(
            text.contains(&format!("| `{key}` | `{}` |", env_name(key))),
            "{key}"
        );
    }
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md"))
            .unwrap_or_default();
    assert_eq!(shipped, text, "docs/config.md is stale: regenerate it");
}
