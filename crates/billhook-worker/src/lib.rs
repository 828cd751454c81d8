//! billhook-worker: the daemon that applies stored Stripe events exactly once, and the
//! operator's commands around it (migrate, requeue, dead letters).
//!
//! Errors: job handlers return `runner::JobError` (retryable or permanent); commands and
//! set-up return `anyhow::Result`.

pub mod admin;
pub mod audit;
pub mod billing;
pub mod billing_cli;
pub mod cli;
pub mod daemon;
pub mod dead_letter;
pub mod dunning;
pub mod email;
pub mod events;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod restart;
pub mod retention;
pub mod runner;
pub mod settings;
pub mod stripe_api;
