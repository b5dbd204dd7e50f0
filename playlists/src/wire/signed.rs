//! Signed envelopes: `{"v":1,"kind":"schedule","payload":"<json text>","sig":"<hex>"}`.
//! The signature is Ed25519 over `kind`, a zero byte and the exact payload bytes, so no
//! canonical JSON is needed and a payload cannot be replayed as another kind.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::VERSION;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message of {bytes} bytes exceeds the {max}-byte limit")]
    TooLarge { bytes: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("unsupported wire version {0}")]
    Version(u32),
    #[error("expected a {expected} message, got {found:?}")]
    Kind {
        expected: &'static str,
        found: String,
    },
    #[error("bad signature")]
    BadSignature,
    #[error("bad key: {0}")]
    BadKey(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEnvelope {
    pub v: u32,
    pub kind: String,
    pub payload: String,
    pub sig: String,
}

fn signed_bytes(kind: &str, payload: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(kind.len() + 1 + payload.len());
    msg.extend_from_slice(kind.as_bytes());
    msg.push(0);
    msg.extend_from_slice(payload.as_bytes());
    msg
}

/// An Ed25519 key pair: the server's, or a screen's.
#[derive(Clone)]
pub struct Keypair {
    key: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair(public {})", self.public_hex())
    }
}

impl Keypair {
    /// From 32 secret bytes (the caller supplies the randomness).
    pub fn from_secret(secret: [u8; 32]) -> Keypair {
        Keypair {
            key: SigningKey::from_bytes(&secret),
        }
    }
    pub fn from_secret_hex(hex_str: &str) -> Result<Keypair, WireError> {
        let bytes: [u8; 32] = hex::decode(hex_str.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| WireError::BadKey("a secret key is 64 hex digits".into()))?;
        Ok(Keypair::from_secret(bytes))
    }
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, kind: &str, payload: String) -> SignedEnvelope {
        let sig = self.key.sign(&signed_bytes(kind, &payload));
        SignedEnvelope {
            v: VERSION,
            kind: kind.to_owned(),
            payload,
            sig: hex::encode(sig.to_bytes()),
        }
    }

    /// Serialises `value` and signs it: the bytes to publish.
    pub fn seal<T: Serialize>(&self, kind: &str, value: &T) -> Vec<u8> {
        let payload = serde_json::to_string(value).expect("wire types serialise");
        serde_json::to_vec(&self.sign(kind, payload)).expect("envelope serialises")
    }
}

pub fn public_key_from_hex(hex_str: &str) -> Result<VerifyingKey, WireError> {
    let bytes: [u8; 32] = hex::decode(hex_str.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| WireError::BadKey("a public key is 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| WireError::BadKey(e.to_string()))
}

/// Checks size, shape, kind and signature; returns the envelope (with its payload text).
pub fn open_envelope(
    raw: &[u8],
    kind: &'static str,
    key: &VerifyingKey,
    max: usize,
) -> Result<SignedEnvelope, WireError> {
    if raw.len() > max {
        return Err(WireError::TooLarge {
            bytes: raw.len(),
            max,
        });
    }
    let env: SignedEnvelope =
        serde_json::from_slice(raw).map_err(|e| WireError::Malformed(e.to_string()))?;
    if env.v != VERSION {
        return Err(WireError::Version(env.v));
    }
    if env.kind != kind {
        return Err(WireError::Kind {
            expected: kind,
            found: env.kind,
        });
    }
    let sig: [u8; 64] = hex::decode(&env.sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(WireError::BadSignature)?;
    key.verify(
        &signed_bytes(kind, &env.payload),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| WireError::BadSignature)?;
    Ok(env)
}

/// `open_envelope`, then parses the payload as `T`.
pub fn open<T: for<'de> Deserialize<'de>>(
    raw: &[u8],
    kind: &'static str,
    key: &VerifyingKey,
    max: usize,
) -> Result<T, WireError> {
    let env = open_envelope(raw, kind, key, max)?;
    serde_json::from_str(&env.payload)
        .map_err(|e| WireError::Malformed(format!("{kind} payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_open() {
        let k = Keypair::from_secret([7; 32]);
        let raw = k.seal("ack", &serde_json::json!({"v": 1, "x": 2}));
        let v: serde_json::Value = open(&raw, "ack", &k.public(), 1000).unwrap();
        assert_eq!(v["x"], 2);
        assert_eq!(
            open::<serde_json::Value>(&raw, "schedule", &k.public(), 1000),
            Err(WireError::Kind {
                expected: "schedule",
                found: "ack".into()
            })
        );
        let other = Keypair::from_secret([8; 32]);
        assert_eq!(
            open::<serde_json::Value>(&raw, "ack", &other.public(), 1000),
            Err(WireError::BadSignature)
        );
        assert!(matches!(
            open::<serde_json::Value>(&raw, "ack", &k.public(), 10),
            Err(WireError::TooLarge { .. })
        ));
        let mut env: SignedEnvelope = serde_json::from_slice(&raw).unwrap();
        env.payload = env.payload.replace('2', "3");
        let forged = serde_json::to_vec(&env).unwrap();
        assert_eq!(
            open::<serde_json::Value>(&forged, "ack", &k.public(), 1000),
            Err(WireError::BadSignature)
        );
        assert!(matches!(
            open::<serde_json::Value>(b"{nope", "ack", &k.public(), 1000),
            Err(WireError::Malformed(_))
        ));
        let k2 = Keypair::from_secret_hex(&k.secret_hex()).unwrap();
        assert_eq!(k2.public_hex(), k.public_hex());
        assert_eq!(public_key_from_hex(&k.public_hex()).unwrap(), k.public());
    }
}
