//! `server`: the signage central scheduler. The store (redb) and its catalogue, scenario
//! import, schedule documents and their publication over MQTT, proof-of-play ingest into the
//! ledger, reports, HTTP (media, API, dashboard), emergency takeovers, and the fleet
//! simulation. Scheduling rules
//! live in `playlists`; media decoding in `media`.

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod catalogue;
pub mod changes;
pub mod cli;
pub mod clock;
pub mod config;
pub mod emergency;
pub mod forecast;
pub mod generate;
pub mod http;
pub mod import;
pub mod keys;
pub mod ledger;
pub mod logging;
pub mod plan;
pub mod provision;
pub mod publisher;
pub mod report;
pub mod sim;
pub mod store;
