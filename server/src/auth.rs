//! Users, API tokens and roles (design.md, "People and roles"). A token is 32 random
//! bytes as 64 hex digits, shown once; the store keeps only its SHA-256. The first start
//! of a server makes the `admin` user (every role) whose token is `DATA_DIR/admin.token`
//! (mode 0600), so an operator can reach the API and add the other users.

use std::path::PathBuf;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::admin::AdminToken;
use crate::store::{Role, Store, StoreError, User};

/// Why a request was not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer <token>")]
    Missing,
    #[error("unknown or malformed API token")]
    Invalid,
    #[error("this needs the role {needed}; {user} has {has}")]
    Forbidden {
        needed: String,
        user: String,
        has: String,
    },
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new random token.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}

/// Makes the `admin` user from `DATA_DIR/admin.token` when no user holds the admin role
/// (a fresh store, or one where `users add` made only others before the first start);
/// returns the token file's path when it did.
pub fn bootstrap(store: &dyn Store) -> anyhow::Result<Option<PathBuf>> {
    let users = store.users()?;
    if users.iter().any(|u| u.roles.contains(&Role::Admin)) {
        return Ok(None);
    }
    let name = if users.iter().any(|u| u.name == "admin") {
        "bootstrap-admin"
    } else {
        "admin"
    };
    let token = AdminToken::load_or_create(store.dir())?;
    let user = User {
        name: name.into(),
        roles: Role::ALL.to_vec(),
        token_sha256: token_hash(token.secret()),
        created_at: Utc::now(),
    };
    match store.add_user(&user, "bootstrap") {
        Ok(_) | Err(StoreError::Exists { .. }) => Ok(Some(token.path().to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Adds a user with a new token; returns the token (to show once).
pub fn add_user(
    store: &dyn Store,
    name: &str,
    roles: &[Role],
    author: &str,
) -> Result<(User, String), UserError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return Err(UserError::Invalid(format!(
            "user name {name:?} must be 1-64 letters, digits, '.', '_' or '-'"
        )));
    }
    if roles.is_empty() {
        return Err(UserError::Invalid("give at least one role".into()));
    }
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    let token = new_token().map_err(UserError::Invalid)?;
    let user = User {
        name: name.to_owned(),
        roles,
        token_sha256: token_hash(&token),
        created_at: Utc::now(),
    };
    store.add_user(&user, author)?;
    Ok((user, token))
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user an `Authorization` header value names.
pub fn authenticate(store: &dyn Store, header: Option<&str>) -> Result<User, AuthenticateError> {
    let header = header.ok_or(AuthenticateError::Auth(AuthError::Missing))?;
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(AuthenticateError::Auth(AuthError::Invalid))?;
    store
        .user_by_token(&token_hash(token))?
        .ok_or(AuthenticateError::Auth(AuthError::Invalid))
}

#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refuses a user holding none of `roles`.
pub fn require(user: &User, roles: &[Role]) -> Result<(), AuthError> {
    if user.roles.iter().any(|r| roles.contains(r)) {
        return Ok(());
    }
    let names = |rs: &[Role]| {
        rs.iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    Err(AuthError::Forbidden {
        needed: names(roles),
        user: user.name.clone(),
        has: if user.roles.is_empty() {
            "none".into()
        } else {
            names(&user.roles).replace(" or ", ", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, OpenMode};

    #[test]
    fn tokens_are_checked_by_hash_and_roles_named_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), OpenMode::Create).unwrap();
        let path = bootstrap(&*store).unwrap().expect("admin made");
        assert!(bootstrap(&*store).unwrap().is_none(), "only once");
        let admin_token = std::fs::read_to_string(path).unwrap();
        let admin = authenticate(&*store, Some(&format!("Bearer {admin_token}"))).unwrap();
        assert_eq!(admin.roles, Role::ALL.to_vec());

        let (ann, token) = add_user(&*store, "ann", &[Role::Auditor], "admin").unwrap();
        assert_ne!(ann.token_sha256, token, "only the hash is kept");
        let got = authenticate(&*store, Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(got.name, "ann");
        assert!(require(&got, &[Role::Auditor]).is_ok());
        let refused = require(&got, &[Role::Staff]).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "this needs the role staff; ann has auditor"
        );
        for bad in [None, Some("Bearer 00"), Some(token.as_str())] {
            assert!(authenticate(&*store, bad).is_err(), "{bad:?}");
        }
        let other = "ab".repeat(32);
        assert!(authenticate(&*store, Some(&format!("Bearer {other}"))).is_err());
        assert!(matches!(
            add_user(&*store, "ann", &[Role::Staff], "admin"),
            Err(UserError::Store(StoreError::Exists { .. }))
        ));
        assert!(add_user(&*store, "bad name", &[Role::Staff], "admin").is_err());
        let log = store.revisions(0, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert!(!serde_json::to_string(&log)
            .unwrap()
            .contains(&ann.token_sha256));
    }
}
