//! Broker logins: who may connect to the MQTT broker. Each screen gets a random 256-bit
//! password at provisioning; the server keeps only its hash, in Mosquitto's own
//! PBKDF2-SHA512 format (`$7$iterations$salt$hash`), so the same stored hash both checks
//! logins on the embedded broker and goes into the password file of a Mosquitto broker.
//! The server's own client logs in as [`SERVER_USER`] with a secret kept in the data
//! directory (`broker-server.secret`, mode 0600). Storing hashes belongs to the store;
//! what a logged-in client may then do is the server's own checks (and Mosquitto's ACL).

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// The user name (and client id prefix) of the server's own MQTT clients.
pub const SERVER_USER: &str = "signage-server";
/// The server's broker secret in the data directory.
pub const SERVER_SECRET_FILE: &str = "broker-server.secret";
/// Mosquitto's default PBKDF2 iteration count (`mosquitto_passwd`). The passwords are
/// random 256-bit values, so the count guards nothing a guess could find.
pub const ITERATIONS: u32 = 101;
const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no randomness: {0}")]
    Random(String),
    #[error("broker secret {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("broker secret {path} is damaged: it should be 64 hex digits")]
    Corrupt { path: String },
}

/// A fresh random password: 256 bits as 64 hex digits.
pub fn new_password() -> Result<String, CredentialError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| CredentialError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// A stored password hash in Mosquitto's `$7$` format.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash($7${}$…)", self.iterations)
    }
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; HASH_BYTES];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, iterations, &mut out);
    out
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str) -> Result<PasswordHash, CredentialError> {
        let mut salt = vec![0u8; SALT_BYTES];
        getrandom::getrandom(&mut salt).map_err(|e| CredentialError::Random(e.to_string()))?;
        Ok(PasswordHash::with_salt(password, salt, ITERATIONS))
    }

    fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> PasswordHash {
        PasswordHash {
            hash: derive(password, &salt, iterations),
            iterations,
            salt,
        }
    }

    /// Parses `$7$iterations$salt$hash` (base64 salt and hash, as Mosquitto writes them).
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let rest = text
            .strip_prefix("$7$")
            .ok_or("a password hash starts with $7$ (PBKDF2-SHA512)")?;
        let mut parts = rest.split('$');
        let (Some(iterations), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a password hash is $7$iterations$salt$hash".into());
        };
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("the iteration count of a password hash is a positive number")?;
        let salt = STANDARD
            .decode(salt)
            .map_err(|e| format!("password hash salt: {e}"))?;
        let hash = STANDARD
            .decode(hash)
            .map_err(|e| format!("password hash: {e}"))?;
        if salt.is_empty() || hash.len() != HASH_BYTES {
            return Err(format!(
                "a password hash has a salt and {HASH_BYTES} bytes of hash"
            ));
        }
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Whether `password` is the one hashed (constant time in the hash comparison).
    pub fn verify(&self, password: &str) -> bool {
        let got = derive(password, &self.salt, self.iterations);
        got.ct_eq(&self.hash).into()
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$7${}${}${}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.hash)
        )
    }
}

/// The server's broker secret in `dir`, made on first use (0600, written atomically).
pub fn server_secret(dir: &Path) -> Result<String, CredentialError> {
    let path = dir.join(SERVER_SECRET_FILE);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim();
            if secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(secret.to_owned())
            } else {
                Err(CredentialError::Corrupt { path: shown })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = new_password()?;
            crate::keys::write_private(&path, secret.as_bytes()).map_err(|source| {
                CredentialError::Io {
                    path: shown,
                    source,
                }
            })?;
            Ok(secret)
        }
        Err(source) => Err(CredentialError::Io {
            path: shown,
            source,
        }),
    }
}

/// The credentials the server's own clients log in with.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerLogin {
    pub secret: String,
}

impl std::fmt::Debug for ServerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerLogin([redacted])")
    }
}

impl ServerLogin {
    /// Loads (or makes) the secret in the data directory `dir`.
    pub fn load(dir: &Path) -> Result<ServerLogin, CredentialError> {
        Ok(ServerLogin {
            secret: server_secret(dir)?,
        })
    }

    /// Whether `user`/`password` are the server's.
    pub fn matches(&self, user: &str, password: &str) -> bool {
        user == SERVER_USER && bool::from(password.as_bytes().ct_eq(self.secret.as_bytes()))
    }
}

/// Why a login was refused (logged by the broker hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Anonymous,
    ClientIdIsNotUser,
    UnknownScreen,
    BadPassword,
}

/// The embedded broker's decision for one CONNECT: the server (any client id, its user
/// and secret), or a screen whose client id and user name are its id and whose password
/// matches `screen_hash` (the stored hash of a known, non-decommissioned screen).
pub fn decide(
    server: &ServerLogin,
    client_id: &str,
    user: &str,
    password: &str,
    screen_hash: impl FnOnce(&str) -> Option<PasswordHash>,
) -> Result<(), Refusal> {
    if user.is_empty() {
        return Err(Refusal::Anonymous);
    }
    if user == SERVER_USER {
        return if server.matches(user, password) {
            Ok(())
        } else {
            Err(Refusal::BadPassword)
        };
    }
    if client_id != user {
        return Err(Refusal::ClientIdIsNotUser);
    }
    let hash = screen_hash(user).ok_or(Refusal::UnknownScreen)?;
    if hash.verify(password) {
        Ok(())
    } else {
        Err(Refusal::BadPassword)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line `mosquitto_passwd -b` (Mosquitto 2.0.11) wrote for password "hello": our
    /// parser and PBKDF2 agree with Mosquitto's own output.
    #[test]
    fn verifies_a_hash_written_by_mosquitto_passwd() {
        let h = PasswordHash::parse(
            "$7$101$egaiUCAsnyVcyo/8$IMQE3KJc0sLArnVUaiboSjNhbf/4414WHFxluMULW+vU8lxCI2+6R6vm\
             aLstgmbIUvQUvfT9qrG11uBmsUta8w==",
        )
        .unwrap();
        assert!(h.verify("hello"));
        assert!(!h.verify("hellp"));
        let again = PasswordHash::with_salt("hello", h.salt.clone(), 101);
        assert_eq!(again.to_string(), h.to_string());
    }

    #[test]
    fn hashes_round_trip_and_verify() {
        let h = PasswordHash::new("s3cret").unwrap();
        let text = h.to_string();
        assert!(text.starts_with("$7$101$"), "{text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(parsed, h);
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!parsed.verify(""));
        // Two hashes of one password differ by their salt.
        assert_ne!(PasswordHash::new("s3cret").unwrap().to_string(), text);
    }

    #[test]
    fn known_pbkdf2_sha512_vector() {
        // RFC 6070-style vector for PBKDF2-HMAC-SHA512 ("password", "salt", 1 iteration).
        let h = PasswordHash::with_salt("password", b"salt".to_vec(), 1);
        assert_eq!(
            hex::encode(&h.hash),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
             c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
        );
    }

    fn check(text: &str, expect: Result<(), &str>) {
        match (PasswordHash::parse(text), expect) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(needle)) => assert!(e.contains(needle), "{text:?}: {e}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parse_refuses_bad_hashes() {
        let good = PasswordHash::new("x").unwrap().to_string();
        check(&good, Ok(()));
        check("", Err("$7$"));
        check("$6$abc$def", Err("$7$"));
        check("$7$101$abc", Err("$7$iterations$salt$hash"));
        check("$7$0$AAAA$AAAA", Err("positive"));
        check("$7$x$AAAA$AAAA", Err("positive"));
        check("$7$101$!!$AAAA", Err("salt"));
        check("$7$101$AAAA$AAAA", Err("64 bytes"));
        check(&format!("{good}$extra"), Err("$7$iterations$salt$hash"));
    }

    #[test]
    fn decisions() {
        let server = ServerLogin {
            secret: "a".repeat(64),
        };
        let hash = PasswordHash::new("pw").unwrap();
        let known = |s: &str| (s == "scr-1").then(|| hash.clone());
        let d = |client: &str, user: &str, pw: &str| decide(&server, client, user, pw, known);
        assert_eq!(d("scr-1", "scr-1", "pw"), Ok(()));
        assert_eq!(d("signage-server-7", SERVER_USER, &"a".repeat(64)), Ok(()));
        assert_eq!(d("x", "", ""), Err(Refusal::Anonymous));
        assert_eq!(d("x", SERVER_USER, "b"), Err(Refusal::BadPassword));
        assert_eq!(d("scr-2", "scr-1", "pw"), Err(Refusal::ClientIdIsNotUser));
        assert_eq!(d("scr-1", "scr-1", "wrong"), Err(Refusal::BadPassword));
        assert_eq!(d("scr-9", "scr-9", "pw"), Err(Refusal::UnknownScreen));
    }

    #[test]
    fn the_server_secret_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = server_secret(dir.path()).unwrap();
        let b = server_secret(dir.path()).unwrap();
        assert_eq!((a.len(), &a), (64, &b));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SERVER_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(SERVER_SECRET_FILE), "short").unwrap();
        assert!(matches!(
            server_secret(dir.path()),
            Err(CredentialError::Corrupt { .. })
        ));
    }
}
