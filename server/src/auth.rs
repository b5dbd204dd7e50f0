//! Users, API tokens and roles (design.md, "People and roles"). A token is 32 random
//! bytes as 64 hex digits, shown once; the store keeps only its SHA-256. The first start
//! of a server makes the `admin` user (every role) whose token is `DATA_DIR/admin.token`
//! (mode 0600), so an operator can reach the API and add the other users. Passwords (for
//! the dashboard's login, `session.rs`) are argon2id PHC strings with a random salt.

use std::path::PathBuf;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::admin::AdminToken;
use crate::store::{Role, Store, StoreError, User};

/// Why a request was not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization: Bearer <token> (or log in to the dashboard)")]
    Missing,
    #[error("unknown or malformed API token")]
    Invalid,
    #[error("the session has ended or is unknown; log in again")]
    SessionEnded,
    #[error("{user}: a change through a dashboard session needs the X-CSRF-Token header that GET /api/v1/session gives; it was {problem}")]
    Csrf { user: String, problem: &'static str },
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
        password_phc: None,
    };
    match store.add_user(&user, "bootstrap") {
        Ok(_) | Err(StoreError::Exists { .. }) => Ok(Some(token.path().to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Whether `name` is a valid user name (1-64 letters, digits, '.', '_' or '-').
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The shortest and longest password taken (characters, bytes).
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// The argon2id PHC string of `password` (a random 128-bit salt; the crate's default
/// parameters, 19 MiB and two passes). Refuses a password too short or too long.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(UserError::Password(format!(
            "a password needs at least {PASSWORD_MIN_CHARS} characters"
        )));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(UserError::Password(format!(
            "a password may have at most {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt)
        .map_err(|e| UserError::Invalid(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Invalid(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `phc` (a malformed PHC string matches nothing).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    if password.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Sets `name`'s password (and ends its sessions).
pub fn set_password(
    store: &dyn Store,
    name: &str,
    password: &str,
    author: &str,
) -> Result<(), UserError> {
    let phc = hash_password(password)?;
    store.set_password(name, &phc, author, Utc::now())?;
    Ok(())
}

/// Adds a user with a new token (and a password, when given); returns the token (to show
/// once).
pub fn add_user(
    store: &dyn Store,
    name: &str,
    roles: &[Role],
    password: Option<&str>,
    author: &str,
) -> Result<(User, String), UserError> {
    if !valid_name(name) {
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
    let password_phc = password.map(hash_password).transpose()?;
    let user = User {
        name: name.to_owned(),
        roles,
        token_sha256: token_hash(&token),
        created_at: Utc::now(),
        password_phc,
    };
    store.add_user(&user, author)?;
    Ok((user, token))
}

/// The people of a demo, one per role: (name, role).
pub const DEMO_PEOPLE: &[(&str, Role)] = &[
    ("sam", Role::Staff),
    ("ada", Role::Approver),
    ("otto", Role::Operator),
    ("audrey", Role::Auditor),
];

/// One login a demo is to get: (name, role, password).
pub type DemoLogin = (String, String, String);

/// Gives a demo server its people: one user per role of [`DEMO_PEOPLE`] and a password for
/// the admin, each a new random password. People already there are left as they are (their
/// passwords are not known). `record` is handed the (name, role, password) of those to be
/// given one before anything is stored, so a crash after it leaves no user whose password
/// was never written down; the logins are stored only when it succeeds. Returns them.
pub fn demo_people(
    store: &dyn Store,
    record: impl FnOnce(&[DemoLogin]) -> anyhow::Result<()>,
) -> Result<Vec<DemoLogin>, UserError> {
    let password = || {
        new_token()
            .map(|t| t[..20].to_owned())
            .map_err(UserError::Invalid)
    };
    let users = store.users()?;
    let mut made = Vec::new();
    for (name, role) in DEMO_PEOPLE {
        if !users.iter().any(|u| u.name == *name) {
            made.push((name.to_string(), role.as_str().to_owned(), password()?));
        }
    }
    if let Some(admin) = users
        .iter()
        .find(|u| u.name == "admin" && u.password_phc.is_none())
    {
        made.push((admin.name.clone(), "admin".to_owned(), password()?));
    }
    if made.is_empty() {
        return Ok(made);
    }
    record(&made).map_err(|e| UserError::Invalid(format!("{e:#}")))?;
    for (name, role, p) in &made {
        match DEMO_PEOPLE.iter().find(|(n, _)| n == name) {
            Some((_, r)) => {
                add_user(store, name, &[*r], Some(p), "demo")?;
            }
            None => {
                debug_assert_eq!(role, "admin");
                set_password(store, name, p, "demo")?;
            }
        }
    }
    Ok(made)
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Password(String),
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
    fn the_demo_gets_one_person_per_role_whose_passwords_work_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), OpenMode::Create).unwrap();
        bootstrap(&*store).unwrap();
        let made = demo_people(&*store, |_| Ok(())).unwrap();
        let names: Vec<&str> = made.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, ["sam", "ada", "otto", "audrey", "admin"]);
        for (name, role, password) in &made {
            let user = store.user(name).unwrap().expect("stored");
            assert!(user.roles.iter().any(|r| r.as_str() == role), "{name}");
            let phc = user.password_phc.expect("a password");
            assert!(verify_password(password, &phc), "{name}'s password");
            assert!(!verify_password("not it at all", &phc));
        }
        assert!(
            demo_people(&*store, |_| Ok(())).unwrap().is_empty(),
            "kept as they are"
        );
    }

    #[test]
    fn demo_logins_are_stored_only_once_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), OpenMode::Create).unwrap();
        bootstrap(&*store).unwrap();
        let failed = demo_people(&*store, |_| anyhow::bail!("disk full"));
        assert!(matches!(failed, Err(UserError::Invalid(m)) if m.contains("disk full")));
        let users = store.users().unwrap();
        assert_eq!(users.len(), 1, "only the admin: {users:?}");
        assert!(
            users[0].password_phc.is_none(),
            "the admin's password unchanged"
        );
        let mut seen = Vec::new();
        let made = demo_people(&*store, |m| {
            seen = m.to_vec();
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, made);
        assert_eq!(store.users().unwrap().len(), 5);
    }

    #[test]
    fn tokens_are_checked_by_hash_and_roles_named_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), OpenMode::Create).unwrap();
        let path = bootstrap(&*store).unwrap().expect("admin made");
        assert!(bootstrap(&*store).unwrap().is_none(), "only once");
        let admin_token = std::fs::read_to_string(path).unwrap();
        let admin = authenticate(&*store, Some(&format!("Bearer {admin_token}"))).unwrap();
        assert_eq!(admin.roles, Role::ALL.to_vec());

        let (ann, token) = add_user(&*store, "ann", &[Role::Auditor], None, "admin").unwrap();
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
            add_user(&*store, "ann", &[Role::Staff], None, "admin"),
            Err(UserError::Store(StoreError::Exists { .. }))
        ));
        assert!(add_user(&*store, "bad name", &[Role::Staff], None, "admin").is_err());
        let log = store.revisions(0, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert!(!serde_json::to_string(&log)
            .unwrap()
            .contains(&ann.token_sha256));
    }
}
