//! Transport security (design.md, "Trust on the wire"): the HTTPS listener `serve` runs
//! behind (rustls), the certificate it uses (files from the config, or a CA and a server
//! certificate generated once into DATA_DIR/tls/ and reused), and the client side used by
//! the server's own MQTT connection and the CLI: a pinned CA or the system's roots.
//! What is served over the connection is the HTTP layer's; agents have their own copy of
//! the client side (agent/src/tls.rs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Where the generated certificate lives, under the data directory.
pub const DIR: &str = "tls";
/// The generated CA that agents and the CLI pin.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `serve` does about TLS: `tls = "off"`, `tls = "self-signed"`, or
/// `[tls] cert = "…", key = "…"` in the config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "RawTls")]
pub enum TlsMode {
    /// Plain HTTP.
    Off,
    /// A CA and certificate generated on first use into DATA_DIR/tls/, reused after.
    SelfSigned,
    /// A certificate chain and its private key, PEM files; `ca`, when given, is the CA
    /// agents pin (else they trust their system's roots).
    Files {
        cert: PathBuf,
        key: PathBuf,
        ca: Option<PathBuf>,
    },
}

/// The `tls` value as written.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RawTls {
    Word(String),
    Files {
        cert: PathBuf,
        key: PathBuf,
        #[serde(default)]
        ca: Option<PathBuf>,
    },
}

impl TryFrom<RawTls> for TlsMode {
    type Error = String;
    fn try_from(raw: RawTls) -> Result<TlsMode, String> {
        match raw {
            RawTls::Word(w) => TlsMode::parse(&w),
            RawTls::Files { cert, key, ca } => Ok(TlsMode::Files { cert, key, ca }),
        }
    }
}

impl TlsMode {
    /// `off` or `self-signed`.
    pub fn parse(s: &str) -> Result<TlsMode, String> {
        match s {
            "off" => Ok(TlsMode::Off),
            "self-signed" => Ok(TlsMode::SelfSigned),
            other => Err(format!(
                "tls {other:?} is not \"off\", \"self-signed\" or a table {{ cert, key }}"
            )),
        }
    }
}

/// The server side, ready to serve: the rustls configuration and the CA (PEM) that
/// clients pin: the generated one, the configured one, or none (system roots).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub pin_pem: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS certificate generation: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text: at least one.
pub fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| file_error(path, e))
}

/// The server's TLS for `mode` (`None` when off). `names` are the extra host names or
/// addresses a generated certificate is valid for (beside localhost and loopback).
pub fn server_tls(
    mode: &TlsMode,
    data_dir: &Path,
    names: &[String],
) -> Result<Option<ServerTls>, TlsError> {
    let (cert_pem, key_pem, pin_pem, cert_path, key_path) = match mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files { cert, key, ca } => {
            let pin = match ca {
                Some(ca) => {
                    let pem = read(ca)?;
                    parse_certs(&pem).map_err(|e| file_error(ca, e))?;
                    Some(pem)
                }
                None => None,
            };
            (read(cert)?, read(key)?, pin, cert.clone(), key.clone())
        }
        TlsMode::SelfSigned => {
            let dir = data_dir.join(DIR);
            ensure_self_signed(&dir, names)?;
            let cert = dir.join(CERT_FILE);
            let key = dir.join(KEY_FILE);
            (
                read(&cert)?,
                read(&key)?,
                Some(read(&dir.join(CA_FILE))?),
                cert,
                key,
            )
        }
    };
    let certs = parse_certs(&cert_pem).map_err(|e| file_error(&cert_path, e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| file_error(&key_path, format!("no PEM private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Config(format!(
                "{} and {} do not make a usable certificate: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(ServerTls {
        config: Arc::new(config),
        pin_pem,
    }))
}

/// The names a generated certificate covers: localhost, the loopback addresses, and
/// `names` (the configured host: its HTTP address when not a wildcard, `tls_names`).
pub fn certificate_names(http: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !http.ip().is_unspecified() {
        names.push(http.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Generates DATA_DIR/tls/{ca,cert,key}.pem unless all three are there. The CA's own key
/// is not kept: a new name means a new CA (delete the directory), which agents must pin
/// again.
fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let files = [CA_FILE, CERT_FILE, KEY_FILE].map(|f| dir.join(f));
    if files.iter().all(|f| f.exists()) {
        return Ok(());
    }
    if let Some(present) = files.iter().find(|f| f.exists()) {
        return Err(file_error(
            present,
            format!(
                "{} is incomplete (needs {CA_FILE}, {CERT_FILE} and {KEY_FILE}); remove it to generate a new certificate",
                dir.display()
            ),
        ));
    }
    let (ca_pem, cert_pem, key_pem) = generate(names)?;
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    // The key first and the CA last: the CA's presence marks a complete set.
    write_file(&dir.join(KEY_FILE), &key_pem, true)?;
    write_file(&dir.join(CERT_FILE), &cert_pem, false)?;
    write_file(&dir.join(CA_FILE), &ca_pem, false)?;
    tracing::info!(dir = %dir.display(), ?names, "generated a TLS CA and server certificate");
    Ok(())
}

/// A CA and a server certificate for `names` signed by it: (CA PEM, certificate PEM, key
/// PEM).
pub fn generate(names: &[String]) -> Result<(String, String, String), TlsError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let g = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(g)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "signage local CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(g)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(g)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(g)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "signage server");
    let key = KeyPair::generate().map_err(g)?;
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).map_err(g)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// Writes `text` to `path` through a synced temporary file; mode 0600 when `private`.
fn write_file(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let err = |e: std::io::Error| file_error(path, e);
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    let mut f = options.open(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// A rustls client configuration trusting `ca_pem` alone, or the system's roots.
pub fn client_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in parse_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("pinned CA refused: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if roots.add_parsable_certificates(found.certs).0 == 0 {
                return Err("no CA file given and no system root certificates".into());
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A listener for `axum::serve` that hands over connections once their TLS handshake is
/// done. Handshakes run concurrently, each with a deadline, so a slow or plain-HTTP client
/// holds up nobody; failed ones are logged at debug level and dropped.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` until `shutdown`.
    pub fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: wait instead of spinning.
                            tracing::warn!(error = %e, "HTTPS accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // Shut down: no more connections; axum's graceful shutdown ends the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let names = certificate_names("0.0.0.0:8443".parse().unwrap(), &["signage.example".into()]);
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "signage.example"]);
        let first = server_tls(&TlsMode::SelfSigned, dir.path(), &names)
            .unwrap()
            .unwrap();
        let key = dir.path().join(DIR).join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key_before = std::fs::read(&key).unwrap();
        let again = server_tls(&TlsMode::SelfSigned, dir.path(), &names)
            .unwrap()
            .unwrap();
        assert_eq!(first.pin_pem, again.pin_pem, "the CA is reused");
        assert_eq!(
            std::fs::read(&key).unwrap(),
            key_before,
            "the key is reused"
        );
        // The pinned PEM is a CA, not the server certificate itself.
        let cert = std::fs::read_to_string(dir.path().join(DIR).join(CERT_FILE)).unwrap();
        assert_ne!(Some(cert), first.pin_pem);
        assert!(client_config(first.pin_pem.as_deref()).is_ok());
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let mode = TlsMode::Files {
            cert: cert.clone(),
            key: key.clone(),
            ca: None,
        };
        let err = server_tls(&mode, dir.path(), &[]).unwrap_err().to_string();
        assert!(
            err.contains("c.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let (_, good_cert, _) = generate(&["localhost".into()]).unwrap();
        std::fs::write(&cert, good_cert).unwrap();
        let err = server_tls(&mode, dir.path(), &[]).unwrap_err().to_string();
        assert!(
            err.contains("k.pem") && err.contains("private key"),
            "{err}"
        );
        let missing = TlsMode::Files {
            cert: dir.path().join("absent.pem"),
            key,
            ca: None,
        };
        let err = server_tls(&missing, dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.pem"), "{err}");
        // A half-generated directory is refused, not silently replaced.
        std::fs::create_dir_all(dir.path().join(DIR)).unwrap();
        std::fs::write(dir.path().join(DIR).join(CERT_FILE), "x").unwrap();
        let err = server_tls(&TlsMode::SelfSigned, dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("incomplete"), "{err}");
        assert_eq!(TlsMode::parse("self-signed"), Ok(TlsMode::SelfSigned));
        assert!(TlsMode::parse("on").unwrap_err().contains("\"on\""));
    }
}
