//! Pieces both Billhook binaries share: configuration, the database and its migrations, the
//! Stripe envelope and signature, storing an event with its job (ingest), job types,
//! telemetry and the shutdown signal.
//!
//! Errors: functions that a caller branches on return a `thiserror` enum of their own
//! (`SignatureError`, `EnvelopeError`, `NotMigrated`); set-up code returns `anyhow::Result`.

pub mod config;
pub mod db;
pub mod ingest;
pub mod jobs;
pub mod shutdown;
pub mod stripe;
pub mod telemetry;
