//! The publisher lease: which one of the servers sharing a store publishes schedules and
//! commands (design.md, "Beyond one machine"). Each server holds one contender
//! ([`Store::publisher_lease`](super::Store::publisher_lease)) and asks it every
//! [`crate::replica::LEASE_EVERY`] to take the lease or to confirm it still has it; at most
//! one contender holds it at a time. Here: the trait, the lease of a server alone with its
//! store ([`Sole`]) and the lease among the servers of one process sharing one store object
//! ([`LocalLeases`], the redb store's). PostgreSQL's is an advisory lock held by a session
//! (`postgres/lease.rs`). Who publishes what is `crate::replica`'s.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::StoreError;

/// One contender for the right to publish.
pub trait PublisherLease: Send + Sync + Debug {
    /// Takes the lease when it is free, or checks that this contender still has it (a
    /// lease whose check fails is lost). Whether this contender holds it now.
    fn try_hold(&self) -> Result<bool, StoreError>;
    /// Whether this contender held the lease at its last [`try_hold`](Self::try_hold).
    fn held(&self) -> bool;
    /// Gives the lease up, so another contender can take it at once.
    fn release(&self);
}

/// The lease of a server that is alone with its store: always held.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sole;

impl PublisherLease for Sole {
    fn try_hold(&self) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn held(&self) -> bool {
        true
    }

    fn release(&self) {}
}

/// The lease among the servers of one process that share one store object. Cheap to
/// clone: clones are the same lease.
#[derive(Debug, Default, Clone)]
pub struct LocalLeases {
    /// The contender holding it, by number.
    holder: Arc<Mutex<Option<u64>>>,
    next: Arc<AtomicU64>,
}

impl LocalLeases {
    /// A new contender for this lease (it holds nothing yet).
    pub fn contender(&self) -> LocalLease {
        LocalLease {
            holder: self.holder.clone(),
            id: self.next.fetch_add(1, Ordering::SeqCst),
            held: AtomicBool::new(false),
        }
    }
}

/// One contender for a [`LocalLeases`]; dropping it releases the lease.
#[derive(Debug)]
pub struct LocalLease {
    holder: Arc<Mutex<Option<u64>>>,
    id: u64,
    held: AtomicBool,
}

impl PublisherLease for LocalLease {
    fn try_hold(&self) -> Result<bool, StoreError> {
        let mut holder = self.holder.lock().unwrap_or_else(|p| p.into_inner());
        let held = match *holder {
            Some(id) => id == self.id,
            None => {
                *holder = Some(self.id);
                true
            }
        };
        self.held.store(held, Ordering::SeqCst);
        Ok(held)
    }

    fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    fn release(&self) {
        let mut holder = self.holder.lock().unwrap_or_else(|p| p.into_inner());
        if *holder == Some(self.id) {
            *holder = None;
        }
        self.held.store(false, Ordering::SeqCst);
    }
}

impl Drop for LocalLease {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One holder at a time; a released or dropped holder's lease goes to the next asker.
    #[test]
    fn one_contender_holds_until_it_lets_go() {
        let leases = LocalLeases::default();
        let (a, b) = (leases.contender(), leases.contender());
        assert!(a.try_hold().unwrap());
        assert!(!b.try_hold().unwrap());
        assert!(a.try_hold().unwrap(), "the holder keeps it");
        assert!(a.held() && !b.held());
        a.release();
        assert!(!a.held());
        assert!(b.try_hold().unwrap());
        assert!(!a.try_hold().unwrap());
        drop(b);
        assert!(a.try_hold().unwrap(), "a dropped holder lets go");
        assert!(Sole.try_hold().unwrap() && Sole.held());
    }
}
