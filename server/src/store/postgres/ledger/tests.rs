//! Tests of the PostgreSQL ledger that only it has: damage written with SQL, exactly once
//! across replicas, and its size at rest. The cases both backends share are in
//! `store/conformance/ledger.rs`.
