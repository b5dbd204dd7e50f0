//! `server`: the signage central scheduler, a live multi-user service. The store boundary
//! (`store`: traits, with redb behind them), the domain services (catalogue, import,
//! publishing, reports, audit, forecast, emergencies, users and dashboard sessions), the MQTT side (`app`: publisher task,
//! ingest worker), HTTP (`http`: API v1, media, dashboard), the CLI and the fleet
//! simulation. Scheduling rules live in `playlists`; media decoding in `media`.

pub mod admin;
pub mod app;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod broker_auth;
pub mod builtin;
pub mod campaign_check;
pub mod catalogue;
pub mod changes;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cron_text;
pub mod drill;
pub mod emergency;
pub mod emergency_history;
pub mod fleet;
pub mod fleet_view;
pub mod forecast;
pub mod generate;
pub mod health;
pub mod http;
pub mod import;
pub mod ingest;
pub mod keys;
pub mod ledger;
pub mod logging;
pub mod media_checks;
pub mod mosquitto;
pub mod plan;
pub mod planned;
pub mod pop_source;
pub mod posters;
pub mod provision;
pub mod publisher;
pub mod renditions;
pub mod replica;
pub mod report;
pub mod retention;
pub mod review;
pub mod series;
pub mod session;
pub mod shared_plan;
pub mod sim;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
pub mod tls;
