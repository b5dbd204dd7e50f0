//! The bootstrap admin's API token: 32 random bytes as hex in `DATA_DIR/admin.token` (mode
//! 0600), made at the first start (`auth::bootstrap` registers its hash as the `admin`
//! user). Its path is logged, never its value; requests present it as
//! `Authorization: Bearer <token>`.

use std::path::{Path, PathBuf};

pub const FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error("admin token {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin token {path} is not 64 hex digits")]
    Corrupt { path: PathBuf },
    #[error("no randomness: {0}")]
    Random(String),
}

/// The token; `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken {
    hex: String,
    path: PathBuf,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminToken")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AdminToken {
    /// Loads the token from `dir`, creating it (temporary file, fsync, rename) on first use.
    pub fn load_or_create(dir: &Path) -> Result<AdminToken, AdminTokenError> {
        let path = dir.join(FILE);
        let io = |source| AdminTokenError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let hex = text.trim().to_owned();
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AdminTokenError::Corrupt { path });
                }
                Ok(AdminToken { hex, path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::getrandom(&mut bytes)
                    .map_err(|e| AdminTokenError::Random(e.to_string()))?;
                let hex = hex::encode(bytes);
                crate::keys::write_private(&path, hex.as_bytes()).map_err(io)?;
                Ok(AdminToken { hex, path })
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token itself (to register its hash; never logged).
    pub fn secret(&self) -> &str {
        &self.hex
    }

    /// Whether an `Authorization` header value presents this token (compared in time
    /// independent of where the first difference is).
    pub fn authorises(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let given = given.trim().as_bytes();
        let want = self.hex.as_bytes();
        given.len() == want.len()
            && given
                .iter()
                .zip(want)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = AdminToken::load_or_create(dir.path()).unwrap();
        let b = AdminToken::load_or_create(dir.path()).unwrap();
        assert_eq!(a.hex, b.hex);
        assert_eq!(a.hex.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(a.authorises(Some(&format!("Bearer {}", a.hex))));
        assert!(!a.authorises(Some(&a.hex)));
        assert!(!a.authorises(Some("Bearer 00")));
        assert!(!a.authorises(None));
        assert!(!format!("{a:?}").contains(&a.hex));
        std::fs::write(a.path(), "short").unwrap();
        assert!(AdminToken::load_or_create(dir.path()).is_err());
    }
}
