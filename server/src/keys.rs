//! The server's Ed25519 key, made on first use and kept in the data directory (mode 0600,
//! written to a temporary file and renamed so a crash never leaves half a key), and fresh
//! keys for screens.

use std::io::Write;
use std::path::Path;

use playlists::wire::Keypair;

const FILE: &str = "server.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("server key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("server key {path} is corrupt: {problem}")]
    Corrupt { path: String, problem: String },
    #[error("no randomness: {0}")]
    Random(String),
}

/// Writes a secret file readable by its owner only (mode 0600 on Unix): a temporary file
/// beside it, fsynced, then renamed, so a crash never leaves half a secret.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A new key pair from the operating system's randomness.
pub fn generate() -> Result<Keypair, KeyError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(Keypair::from_secret(secret))
}

/// Loads the server key from `dir`, creating it on first use.
pub fn server_key(dir: &Path) -> Result<Keypair, KeyError> {
    let path = dir.join(FILE);
    let shown = path.display().to_string();
    let io = |source| KeyError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Keypair::from_secret_hex(&text).map_err(|e| KeyError::Corrupt {
            path: shown.clone(),
            problem: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate()?;
            write_private(&path, key.secret_hex().as_bytes()).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}
