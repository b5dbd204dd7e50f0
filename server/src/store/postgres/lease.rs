//! The publisher lease of servers sharing one database: a session-level advisory lock
//! (`pg_try_advisory_lock`) held on a connection of its own, never one of the pool's. The
//! lock lives exactly as long as that session, so a holder that dies (SIGKILL, a lost
//! machine) lets go as soon as PostgreSQL sees its connection close, and another replica
//! takes it at its next try. The holder checks its session on every try (`SELECT 1`): a
//! failed check is a lost lease, and the session is dropped, so it is never held twice.
//! Advisory locks are per database: servers on other databases never contend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ::postgres::{Client, Config, NoTls};

use super::describe;
use crate::store::lease::PublisherLease;
use crate::store::StoreError;

/// The advisory lock's key ("SIGNPUB1"): one per database.
pub const LOCK_KEY: i64 = 0x5349_474E_5055_4231;

/// How long connecting for the lease may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One server's contender for the lease of one database.
pub struct PgLease {
    config: Config,
    /// The database as shown in messages (no password).
    shown: String,
    /// The lease's own session, while there is one.
    session: Mutex<Option<Client>>,
    held: AtomicBool,
}

impl Drop for PgLease {
    /// The synchronous client's drop runs a runtime of its own, which panics on a tokio
    /// worker thread: a runtime shutting down drops the replica's task, and this lease with
    /// it, there. The session is closed on a thread of its own (closing it lets the lease
    /// go, as [`PublisherLease::release`] does).
    fn drop(&mut self) {
        let session = self
            .session
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(client) = session {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("database", &self.shown)
            .field("held", &self.held())
            .finish()
    }
}

impl PgLease {
    /// A contender on the database `config` names (it connects at its first try).
    pub fn new(config: &Config) -> PgLease {
        let mut config = config.clone();
        config.connect_timeout(CONNECT_TIMEOUT);
        // A peer that vanished without closing (a lost machine, a cut cable) is noticed by
        // TCP keepalives, on both sides, within about a minute.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(20));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(4);
        config.application_name("signage publisher lease");
        PgLease {
            shown: super::shown(&config),
            config,
            session: Mutex::new(None),
            held: AtomicBool::new(false),
        }
    }

    /// The server process id of the lease's session, when it has one (for tests and logs).
    pub fn backend_pid(&self) -> Option<i32> {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let client = session.as_mut()?;
        client
            .query_one("SELECT pg_backend_pid()", &[])
            .ok()
            .map(|row| row.get(0))
    }

    fn lost(&self, session: &mut Option<Client>) {
        *session = None;
        self.held.store(false, Ordering::SeqCst);
    }

    fn backend(&self, what: &str, e: &::postgres::Error) -> StoreError {
        StoreError::Backend(
            format!("publisher lease on {}: {what}: {}", self.shown, describe(e)).into(),
        )
    }
}

impl PublisherLease for PgLease {
    fn try_hold(&self) -> Result<bool, StoreError> {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if self.held() {
            let alive = session
                .as_mut()
                .map(|client| client.simple_query("SELECT 1"));
            return match alive {
                Some(Ok(_)) => Ok(true),
                Some(Err(e)) => {
                    self.lost(&mut session);
                    Err(self.backend("the holding session failed its check; lease lost", &e))
                }
                None => {
                    self.lost(&mut session);
                    Ok(false)
                }
            };
        }
        if session.as_ref().is_none_or(|c| c.is_closed()) {
            let client = self
                .config
                .connect(NoTls)
                .map_err(|e| self.backend("cannot connect", &e))?;
            *session = Some(client);
        }
        let Some(client) = session.as_mut() else {
            return Ok(false);
        };
        match client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY]) {
            Ok(row) => {
                let held: bool = row.get(0);
                self.held.store(held, Ordering::SeqCst);
                Ok(held)
            }
            Err(e) => {
                let err = self.backend("cannot ask for the lock", &e);
                self.lost(&mut session);
                Err(err)
            }
        }
    }

    fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Ends the session: the lock goes with it.
    fn release(&self) {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        self.lost(&mut session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testdb::TestDb;
    use std::str::FromStr;

    fn lease(db: &TestDb) -> PgLease {
        PgLease::new(&Config::from_str(&db.url()).unwrap())
    }

    /// Asks `lease` until it holds, a bounded number of times (its retry period apart).
    fn takes(lease: &PgLease) -> bool {
        (0..100).any(|_| {
            let held = lease.try_hold().unwrap_or(false);
            if !held {
                std::thread::sleep(Duration::from_millis(100));
            }
            held
        })
    }

    #[test]
    fn one_holder_and_a_dead_session_lets_go() {
        let db = TestDb::new();
        let (a, b) = (lease(&db), lease(&db));
        assert!(a.try_hold().unwrap());
        assert!(!b.try_hold().unwrap(), "two holders at once");
        assert!(a.try_hold().unwrap(), "the holder keeps it");
        assert!(a.held() && !b.held());

        // The holder's session dies under it: its next check says so, and the other takes it.
        let pid = a.backend_pid().expect("a session");
        let mut admin = Client::connect(&db.url(), NoTls).unwrap();
        let row = admin
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        assert!(row.get::<_, bool>(0));
        assert!(a.try_hold().is_err(), "a failed check is a lost lease");
        assert!(!a.held());
        assert!(takes(&b), "the other never took the lease");
        assert!(!a.try_hold().unwrap(), "the old holder took it back");

        // A holder that goes away (drop: its connection closes) lets go too.
        drop(b);
        assert!(takes(&a));

        // Released: the other takes it at once.
        let c = lease(&db);
        assert!(!c.try_hold().unwrap());
        a.release();
        assert!(!a.held());
        assert!(takes(&c));
    }

    #[test]
    fn a_held_lease_dropped_on_a_runtime_worker_lets_go_without_panicking() {
        let db = TestDb::new();
        let a = lease(&db);
        assert!(a.try_hold().unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        // Dropped inside a task on a worker, as a runtime's shutdown drops the replica's.
        rt.block_on(async move { tokio::spawn(async move { drop(a) }).await })
            .expect("the drop did not panic");
        let b = lease(&db);
        assert!(
            takes(&b),
            "the dropped holder's session still holds the lease"
        );
    }
}
