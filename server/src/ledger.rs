//! The proof-of-play ledger's types, for the domain: the trait and values live in
//! `store::ledger`, the redb implementation in `store::redb::ledger`.

pub use crate::store::ledger::*;
