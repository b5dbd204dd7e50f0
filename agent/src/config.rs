//! The agent's typed, validated configuration: the TOML file that `signage screens
//! provision` writes, parsed once at start. Owns parsing and validation (ids, URLs, keys,
//! cache size); what the values mean at run time belongs to the modules that use them.
//! Secrets are wrapped in [`Secret`] so `Debug` never prints them.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use playlists::wire::signed::public_key_from_hex;
use playlists::wire::Keypair;
use playlists::ScreenId;
use serde::Deserialize;

/// Default size of the media cache: 1 GiB.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 1 << 30;
/// How far ahead the agent makes sure every planned creative is cached: a week offline.
pub const DEFAULT_PREFETCH_HOURS: u32 = 168;

/// Why a configuration was refused; each case names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config is not valid TOML or misses a field: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("config field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
}

fn field(field: &'static str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError::Field {
        field,
        reason: reason.to_string(),
    }
}

/// A value that must never appear in logs: `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The file as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    screen_id: String,
    mqtt_url: String,
    server_url: String,
    #[serde(default = "default_prefix")]
    topic_prefix: String,
    server_public_key: String,
    screen_secret_key: String,
    /// A PEM file whose certificates alone are trusted for `mqtts://` and `https://`.
    #[serde(default)]
    ca_file: Option<String>,
    /// The same, inline (what `signage screens provision` writes for a self-signed server).
    #[serde(default)]
    server_ca_pem: Option<String>,
    #[serde(default)]
    mqtt_password: Option<String>,
    #[serde(default)]
    cache: RawCache,
    /// Where the agent serves its own `/metrics` (e.g. `"127.0.0.1:9101"`); none when unset.
    #[serde(default)]
    metrics_listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCache {
    max_bytes: Option<u64>,
    prefetch_hours: Option<u32>,
}

fn default_prefix() -> String {
    "signage/v1".to_owned()
}

/// Everything the agent needs to know about itself and its server.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Also the MQTT client id and username.
    pub screen_id: ScreenId,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// With `mqtts://`, the TLS client configuration (trusting `ca_pem` or the system).
    pub mqtt_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Certificates (PEM) trusted alone for `mqtts://` and `https://`, instead of the
    /// system's roots.
    pub ca_pem: Option<String>,
    /// `http://host:port`, no trailing slash; media are at `{server_url}{creative.url}`.
    pub server_url: String,
    /// Topic prefix such as `signage/v1`, no trailing slash.
    pub topic_prefix: String,
    /// Pinned key that signs schedules, commands and acks.
    pub server_public_key: VerifyingKey,
    /// This screen's key, which signs proof-of-play batches and statuses.
    pub screen_key: Secret<Keypair>,
    /// The broker password made at provisioning (user name = screen id). Configs written
    /// before brokers authenticated have none: the agent then logs in without one.
    pub mqtt_password: Option<Secret<String>>,
    pub cache_max_bytes: u64,
    /// The horizon: media planned within it are fetched first and never evicted; the
    /// runway is measured up to it.
    pub prefetch_hours: u32,
    /// Where `/metrics` is served (`metrics_listen`), if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        AgentConfig::from_toml_str(&text)
    }

    pub fn from_toml_str(text: &str) -> Result<AgentConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let screen_id = ScreenId::parse(&raw.screen_id).map_err(|e| field("screen_id", e))?;
        let (mqtt_host, mqtt_port, mqtt_tls) =
            parse_mqtt_url(&raw.mqtt_url).map_err(|e| field("mqtt_url", e))?;
        let server_url = parse_http_url(&raw.server_url).map_err(|e| field("server_url", e))?;
        let topic_prefix = raw.topic_prefix.trim_end_matches('/').to_owned();
        if topic_prefix.is_empty() || topic_prefix.contains(['+', '#']) {
            return Err(field(
                "topic_prefix",
                "must be non-empty and without MQTT wildcards",
            ));
        }
        let server_public_key = public_key_from_hex(&raw.server_public_key)
            .map_err(|e| field("server_public_key", e))?;
        let screen_key = Keypair::from_secret_hex(&raw.screen_secret_key)
            .map_err(|_| field("screen_secret_key", "a secret key is 64 hex digits"))?;
        let ca_pem = match (raw.ca_file, raw.server_ca_pem) {
            (Some(_), Some(_)) => {
                return Err(field("ca_file", "give ca_file or server_ca_pem, not both"))
            }
            (Some(path), None) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| field("ca_file", format!("cannot read {path}: {e}")))?,
            ),
            (None, pem) => pem,
        };
        if let Some(pem) = &ca_pem {
            crate::tls::parse_pem_certs(pem).map_err(|e| field("ca_file", e))?;
        }
        let mqtt_tls = if mqtt_tls {
            Some(crate::tls::client_config(ca_pem.as_deref()).map_err(|e| field("mqtt_url", e))?)
        } else {
            None
        };
        let mqtt_password = match raw.mqtt_password {
            Some(p) if p.is_empty() || p.chars().any(char::is_control) => {
                return Err(field(
                    "mqtt_password",
                    "must be non-empty, without control characters",
                ))
            }
            p => p.map(Secret::new),
        };
        let cache_max_bytes = raw.cache.max_bytes.unwrap_or(DEFAULT_CACHE_MAX_BYTES);
        if cache_max_bytes == 0 {
            return Err(field("cache.max_bytes", "must be positive"));
        }
        let prefetch_hours = raw.cache.prefetch_hours.unwrap_or(DEFAULT_PREFETCH_HOURS);
        if !(1..=24 * 62).contains(&prefetch_hours) {
            return Err(field(
                "cache.prefetch_hours",
                "must be between 1 and 1488 (62 days)",
            ));
        }
        let metrics_listen = raw
            .metrics_listen
            .map(|a| {
                a.parse()
                    .map_err(|e| field("metrics_listen", format!("{a:?} is not an address: {e}")))
            })
            .transpose()?;
        Ok(AgentConfig {
            metrics_listen,
            screen_id,
            mqtt_host,
            mqtt_port,
            mqtt_tls,
            ca_pem,
            server_url,
            topic_prefix,
            server_public_key,
            screen_key: Secret::new(screen_key),
            mqtt_password,
            cache_max_bytes,
            prefetch_hours,
        })
    }
}

/// `mqtt://host:port` or `tcp://host:port` (port defaults to 1883), or `mqtts://host:port`
/// (TLS, port defaults to 8883); whether it is TLS.
fn parse_mqtt_url(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (rest, true)
    } else {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| format!("{url:?} must start with mqtt://, tcp:// or mqtts://"))?;
        (rest, false)
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains(['/', '@', '?']) {
        return Err(format!("{url:?} must be just mqtt://host:port"));
    }
    let (host, port) = split_host_port(authority, if tls { 8883 } else { 1883 })
        .map_err(|e| format!("{url:?}: {e}"))?;
    Ok((host, port, tls))
}

/// `http://host[:port]` or `https://host[:port]`, without a path; returned without a
/// trailing slash.
fn parse_http_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let (rest, default_port) = match trimmed.strip_prefix("https://") {
        Some(rest) => (rest, 443),
        None => (
            trimmed
                .strip_prefix("http://")
                .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?,
            80,
        ),
    };
    if rest.contains(['/', '@', '?']) {
        return Err(format!("{url:?} must be just http(s)://host:port"));
    }
    split_host_port(rest, default_port).map_err(|e| format!("{url:?}: {e}"))?;
    Ok(trimmed.to_owned())
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    const SECRET: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const PASSWORD: &str = "4d2c9f0e8b7a6d5c4b3a29180f0e0d0c0b0a09080706050403020100ffeeddcc";

    fn valid() -> String {
        format!(
            r#"
screen_id = "bj-metro-xidan-s1"
mqtt_url = "mqtt://127.0.0.1:1883"
server_url = "http://127.0.0.1:8080/"
topic_prefix = "signage/v1"
server_public_key = "{SERVER}"
screen_secret_key = "{SECRET}"
mqtt_password = "{PASSWORD}"
[cache]
max_bytes = 1048576
"#
        )
    }

    fn check(text: &str, expect: Result<(), &str>) {
        let got = AgentConfig::from_toml_str(text)
            .map(|_| ())
            .map_err(|e| e.to_string());
        match (got, expect) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.contains(want), "error {e:?} should mention {want:?}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_a_valid_file() {
        let c = AgentConfig::from_toml_str(&valid()).unwrap();
        assert_eq!(c.screen_id.as_str(), "bj-metro-xidan-s1");
        assert_eq!((c.mqtt_host.as_str(), c.mqtt_port), ("127.0.0.1", 1883));
        assert_eq!(c.server_url, "http://127.0.0.1:8080");
        assert_eq!(c.topic_prefix, "signage/v1");
        assert_eq!(c.cache_max_bytes, 1 << 20);
        assert_eq!(hex::encode(c.server_public_key.to_bytes()), SERVER);
        assert_eq!(
            c.mqtt_password.as_ref().map(|p| p.expose().as_str()),
            Some(PASSWORD)
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains(SECRET), "secret leaked in {debug}");
        assert!(!debug.contains(PASSWORD), "password leaked in {debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn defaults() {
        let text = valid()
            .replace("[cache]\nmax_bytes = 1048576\n", "")
            .replace("topic_prefix = \"signage/v1\"\n", "");
        let c = AgentConfig::from_toml_str(&text).unwrap();
        assert_eq!(c.cache_max_bytes, DEFAULT_CACHE_MAX_BYTES);
        assert_eq!(c.prefetch_hours, DEFAULT_PREFETCH_HOURS);
        assert_eq!(c.topic_prefix, "signage/v1");
        // A config from before brokers authenticated: no password.
        let old = valid().replace(&format!("mqtt_password = \"{PASSWORD}\"\n"), "");
        assert!(AgentConfig::from_toml_str(&old)
            .unwrap()
            .mqtt_password
            .is_none());
    }

    #[test]
    fn metrics_listen_is_an_address() {
        assert_eq!(
            AgentConfig::from_toml_str(&valid()).unwrap().metrics_listen,
            None
        );
        let with =
            |v: &str| valid().replace("[cache]", &format!("metrics_listen = {v:?}\n[cache]"));
        let c = AgentConfig::from_toml_str(&with("127.0.0.1:9101")).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9101".parse().unwrap()));
        check(&with("localhost:9101"), Err("metrics_listen"));
    }

    #[test]
    fn rejects_bad_files() {
        check(&valid(), Ok(()));
        check(&valid().replace(PASSWORD, ""), Err("mqtt_password"));
        check(&valid().replace(PASSWORD, "a\tb"), Err("mqtt_password"));
        check(
            &valid().replace("screen_id = \"bj-metro-xidan-s1\"\n", ""),
            Err("missing field `screen_id`"),
        );
        check(&valid().replace(SERVER, "abc"), Err("server_public_key"));
        check(
            &valid().replace(SECRET, &"z".repeat(64)),
            Err("screen_secret_key"),
        );
        check(
            &valid().replace("bj-metro-xidan-s1", "a/b"),
            Err("screen_id"),
        );
        check(
            &valid().replace("mqtt://127.0.0.1:1883", "mqtts://h:8883"),
            Ok(()),
        );
        check(
            &valid().replace("mqtt://127.0.0.1:1883", "ws://h:8883"),
            Err("mqtt_url"),
        );
        check(
            &valid().replace("[cache]", "server_ca_pem = \"not pem\"\n[cache]"),
            Err("ca_file"),
        );
        check(
            &valid().replace("[cache]", "ca_file = \"/nonexistent/ca.pem\"\n[cache]"),
            Err("cannot read /nonexistent/ca.pem"),
        );
        check(
            &valid().replace("mqtt://127.0.0.1:1883", "mqtt://h:99999"),
            Err("bad port"),
        );
        check(
            &valid().replace("http://127.0.0.1:8080/", "https://h"),
            Ok(()),
        );
        check(
            &valid().replace("http://127.0.0.1:8080/", "ftp://h"),
            Err("server_url"),
        );
        check(
            &valid().replace("max_bytes = 1048576", "max_bytes = 0"),
            Err("cache.max_bytes"),
        );
        check(
            &valid().replace("max_bytes = 1048576", "max_bytes = 1\nprefetch_hours = 0"),
            Err("cache.prefetch_hours"),
        );
        check(
            &valid().replace("max_bytes = 1048576", "max_bytes = 1\nprefetch_hours = 48"),
            Ok(()),
        );
        check(
            &format!(
                "{}\nextra = 1\n",
                valid().replace("[cache]\nmax_bytes = 1048576\n", "")
            ),
            Err("unknown field"),
        );
    }

    #[test]
    fn mqtt_urls() {
        assert_eq!(
            parse_mqtt_url("mqtt://broker").unwrap(),
            ("broker".into(), 1883, false)
        );
        assert_eq!(
            parse_mqtt_url("tcp://[::1]:1884").unwrap(),
            ("::1".into(), 1884, false)
        );
        assert_eq!(
            parse_mqtt_url("mqtts://broker").unwrap(),
            ("broker".into(), 8883, true)
        );
        assert!(parse_mqtt_url("mqtt://:1883").is_err());
        assert!(parse_mqtt_url("mqtt://h:1/x").is_err());
    }
}
