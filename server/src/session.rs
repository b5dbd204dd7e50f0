//! Dashboard sessions (design.md, "People and roles"): a name and password (argon2id, see
//! `auth.rs`) buy a session whose id is a random 256-bit value sent only as an HttpOnly,
//! SameSite=Strict cookie and stored only as its SHA-256; it ends after [`IDLE`] without a
//! request, at logout, or when the user's password changes. Each session has its own
//! synchronizer token: a state change through a session must carry it as `X-CSRF-Token`
//! (checked in `http/mod.rs`; API tokens need none). Failed logins are slowed per name
//! ([`Limiter`]) and every login, failed or not, lands in the change log.
//!
//! The HTTP side (cookies, routes) is `http/session.rs`; this module knows no axum.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};

use crate::auth::{self, token_hash, AuthError};
use crate::store::{EventKind, Session, Store, StoreError, User};

/// The session cookie's name.
pub const COOKIE: &str = "signage_session";
/// A session ends after this long without a request.
pub const IDLE: TimeDelta = TimeDelta::hours(12);
/// `last_seen` is written at most this often (a store write per request would be waste).
const TOUCH_EVERY: TimeDelta = TimeDelta::minutes(1);
/// Failed logins of one name that cost nothing; each further one doubles the wait.
const FREE_FAILURES: u32 = 3;
/// The longest wait after failed logins.
const MAX_WAIT: TimeDelta = TimeDelta::minutes(15);
/// Names the limiter remembers before it forgets those whose wait is over.
const MAX_TRACKED: usize = 10_000;

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password: the two are not told apart.
    #[error("wrong name or password")]
    Refused,
    #[error("too many failed logins for this name; try again in {retry_after_secs} s")]
    Slowed { retry_after_secs: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Per-name failed login counts: after [`FREE_FAILURES`], the name must wait 1 s, 2 s, 4 s
/// … (at most [`MAX_WAIT`]) after its last failure before the next attempt is even
/// checked. A success forgets the name.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl Limiter {
    fn wait(count: u32) -> TimeDelta {
        if count < FREE_FAILURES {
            return TimeDelta::zero();
        }
        let exp = (count - FREE_FAILURES).min(20);
        TimeDelta::seconds(1i64 << exp).min(MAX_WAIT)
    }

    /// `Err(seconds to wait)` while `name` must wait.
    pub fn check(&self, name: &str, now: DateTime<Utc>) -> Result<(), i64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(&(count, last)) = map.get(name) else {
            return Ok(());
        };
        let until = last + Self::wait(count);
        if now < until {
            // Rounded up: a client waiting this long is let through.
            let ms = (until - now).num_milliseconds();
            return Err((ms + 999) / 1000);
        }
        Ok(())
    }

    pub fn failed(&self, name: &str, now: DateTime<Utc>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (count, last)| now < *last + Self::wait(*count));
        }
        let e = map.entry(name.to_owned()).or_insert((0, now));
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    pub fn succeeded(&self, name: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(name);
    }
}

/// A new session: the cookie's value (shown to the browser only) and what is stored.
#[derive(Debug)]
pub struct NewSession {
    pub id: String,
    pub session: Session,
    pub user: User,
}

/// The PHC string checked for names without a password, so that an unknown name costs
/// the same time as a wrong password.
fn dummy_phc() -> &'static str {
    static PHC: OnceLock<String> = OnceLock::new();
    PHC.get_or_init(|| auth::hash_password("not a password of anyone").unwrap_or_default())
}

/// How the change log names the author of a failed login: the name tried when it could be
/// a user's, otherwise a placeholder (the log never carries arbitrary text as an author).
fn failed_author(name: &str) -> &str {
    if auth::valid_name(name) {
        name
    } else {
        "(invalid name)"
    }
}

/// Checks `name` and `password`; on success stores a new session and records the login,
/// on failure records the failure (both in the change log). Blocking: argon2 and the store.
pub fn login(
    store: &dyn Store,
    limiter: &Limiter,
    name: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<NewSession, LoginError> {
    if let Err(retry_after_secs) = limiter.check(name, now) {
        tracing::warn!(
            user = failed_author(name),
            retry_after_secs,
            "login refused: too many failures"
        );
        return Err(LoginError::Slowed { retry_after_secs });
    }
    let user = if auth::valid_name(name) {
        store.user(name)?
    } else {
        None
    };
    let matches = {
        let phc = user
            .as_ref()
            .and_then(|u| u.password_phc.as_deref())
            .unwrap_or_else(|| dummy_phc());
        auth::verify_password(password, phc)
    };
    let Some(user) = user.filter(|u| matches && u.password_phc.is_some()) else {
        limiter.failed(name, now);
        let author = failed_author(name);
        tracing::warn!(user = author, "login failed");
        store.record_event(
            EventKind::LoginFailed,
            author,
            now,
            "dashboard login failed: wrong name or password",
        )?;
        return Err(LoginError::Refused);
    };
    limiter.succeeded(name);
    store.purge_sessions(now - IDLE)?;
    let id = auth::new_token().map_err(|e| StoreError::Backend(e.into()))?;
    let csrf_token = auth::new_token().map_err(|e| StoreError::Backend(e.into()))?;
    let session = Session {
        user: user.name.clone(),
        csrf_token,
        created_at: now,
        last_seen: now,
    };
    store.put_session(&token_hash(&id), &session)?;
    store.record_event(
        EventKind::Login,
        &user.name,
        now,
        "logged in to the dashboard",
    )?;
    tracing::info!(user = %user.name, "login");
    Ok(NewSession { id, session, user })
}

/// The user and session a session cookie's value names, if the session is current;
/// refreshes its `last_seen` now and then.
pub fn authenticate(
    store: &dyn Store,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(User, Session), SessionError> {
    let well_formed = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(SessionError::Auth(AuthError::SessionEnded));
    }
    let key = token_hash(id);
    let Some(mut session) = store.session(&key)? else {
        return Err(SessionError::Auth(AuthError::SessionEnded));
    };
    if session.last_seen + IDLE <= now {
        store.delete_session(&key)?;
        return Err(SessionError::Auth(AuthError::SessionEnded));
    }
    let Some(user) = store.user(&session.user)? else {
        store.delete_session(&key)?;
        return Err(SessionError::Auth(AuthError::SessionEnded));
    };
    if now - session.last_seen >= TOUCH_EVERY {
        session.last_seen = now;
        store.put_session(&key, &session)?;
    }
    Ok((user, session))
}

/// Ends the session a cookie's value names and records the logout.
pub fn logout(
    store: &dyn Store,
    id: &str,
    user: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    store.delete_session(&token_hash(id))?;
    store.record_event(EventKind::Logout, user, now, "logged out of the dashboard")?;
    Ok(())
}

/// Whether `given` is the session's CSRF token (compared in time independent of where the
/// first difference is).
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    let want = session.csrf_token.as_bytes();
    let given = given.as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, OpenMode, Role};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(1_700_000_000 + secs)
    }

    #[test]
    fn failed_logins_wait_longer_each_time_and_a_success_forgets() {
        let l = Limiter::default();
        for _ in 0..FREE_FAILURES {
            assert_eq!(l.check("ann", at(0)), Ok(()));
            l.failed("ann", at(0));
        }
        // The fourth failure waits 1 s, the fifth 2 s, the sixth 4 s.
        assert_eq!(l.check("ann", at(0)), Err(1));
        assert_eq!(l.check("ann", at(1)), Ok(()));
        l.failed("ann", at(1));
        assert_eq!(l.check("ann", at(2)), Err(1));
        assert_eq!(l.check("ann", at(3)), Ok(()));
        l.failed("ann", at(3));
        assert_eq!(l.check("ann", at(3)), Err(4));
        assert_eq!(l.check("bob", at(3)), Ok(()), "per name");
        for i in 0..40 {
            l.failed("ann", at(10 + i));
        }
        assert_eq!(l.check("ann", at(49)), Err(MAX_WAIT.num_seconds()));
        l.succeeded("ann");
        assert_eq!(l.check("ann", at(49)), Ok(()));
    }

    #[test]
    fn login_checks_the_password_and_logs_each_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), OpenMode::Create).unwrap();
        auth::add_user(
            &*store,
            "ann",
            &[Role::Operator],
            Some("correct horse battery"),
            "admin",
        )
        .unwrap();
        auth::add_user(&*store, "tok", &[Role::Operator], None, "admin").unwrap();
        let head = store.snapshot().unwrap().head;
        let l = Limiter::default();
        for (name, pw) in [
            ("ann", "wrong password!"),
            ("nobody", "correct horse battery"),
            ("tok", ""),
            ("<img src=x>", "x"),
        ] {
            assert!(
                matches!(
                    login(&*store, &l, name, pw, at(0)),
                    Err(LoginError::Refused)
                ),
                "{name}"
            );
        }
        let new = login(&*store, &l, "ann", "correct horse battery", at(5)).unwrap();
        assert_eq!(new.user.name, "ann");
        assert_eq!(new.id.len(), 64);
        assert_ne!(new.id, new.session.csrf_token);
        // Only the hash of the id is stored.
        assert!(store.session(&new.id).unwrap().is_none());

        let log = store.revisions(0, 100).unwrap();
        let events: Vec<(Option<EventKind>, &str)> = log
            .iter()
            .filter(|r| r.event.is_some())
            .map(|r| (r.event, r.author.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                (Some(EventKind::LoginFailed), "ann"),
                (Some(EventKind::LoginFailed), "nobody"),
                (Some(EventKind::LoginFailed), "tok"),
                (Some(EventKind::LoginFailed), "(invalid name)"),
                (Some(EventKind::Login), "ann"),
            ]
        );
        // Events do not move the catalogue's head: a change computed before them applies.
        assert_eq!(head, 2, "each user added is a revision");
        assert_eq!(store.snapshot().unwrap().head, head);
        assert_eq!(log.last().map(|r| r.number), Some(7));
        let commit = crate::store::Commit {
            base: head,
            author: "admin".into(),
            at: at(6),
            comment: "nothing".into(),
            entities: Vec::new(),
        };
        assert!(store.commit(commit).is_ok());

        // Used within a minute: last_seen stays; later: moves.
        let (_, s) = authenticate(&*store, &new.id, at(30)).unwrap();
        assert_eq!(s.last_seen, at(5));
        let (user, s) = authenticate(&*store, &new.id, at(65)).unwrap();
        assert_eq!((user.name.as_str(), s.last_seen), ("ann", at(65)));
        assert!(csrf_matches(&s, &new.session.csrf_token));
        assert!(!csrf_matches(&s, &"0".repeat(64)));
        assert!(!csrf_matches(&s, ""));
        // Idle too long: gone.
        let later = at(65) + IDLE;
        assert!(matches!(
            authenticate(&*store, &new.id, later),
            Err(SessionError::Auth(AuthError::SessionEnded))
        ));
        assert!(authenticate(&*store, &new.id, at(66)).is_err(), "deleted");

        // A password change ends the user's sessions.
        let again = login(&*store, &l, "ann", "correct horse battery", at(100)).unwrap();
        auth::set_password(&*store, "ann", "another long password", "ann").unwrap();
        assert!(authenticate(&*store, &again.id, at(101)).is_err());
        assert!(login(&*store, &l, "ann", "another long password", at(102)).is_ok());
        assert!(matches!(
            auth::set_password(&*store, "ann", "short", "ann"),
            Err(auth::UserError::Password(_))
        ));
        assert!(matches!(
            auth::set_password(&*store, "nobody", "long enough password", "admin"),
            Err(auth::UserError::Store(StoreError::NotFound { .. }))
        ));
        // No hash reaches the change log.
        let text = serde_json::to_string(&store.revisions(0, 100).unwrap()).unwrap();
        assert!(!text.contains("$argon2id$"));
    }
}
