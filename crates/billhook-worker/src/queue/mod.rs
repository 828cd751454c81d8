//! The job queue: apalis on PostgreSQL, behind this one module. Nothing else in the worker
//! names apalis or its tables (`apalis.jobs`, its statuses, its NOTIFY channel).
//!
//! - [`jobs`]: every job's argument, which names its queue and kind;
//! - [`push`]: enqueueing inside the caller's transaction (the row a job is about and the job
//!   commit together), onto the queue the argument's type names;
//! - [`runner`]: the one handler every kind runs in: decoding, panics, retries with backoff,
//!   failure history; [`JobError`] is what a kind's `run` returns;
//! - [`dead_letter`]: jobs that keep failing, and requeue;
//! - [`connections`]: how many of the pool's connections jobs can count on;
//! - [`workers`]: the apalis workers of a process, their [`restart`] policy and the
//!   [`retention`] sweep of finished jobs;
//! - [`metrics`]: job runs, retries, dead letters, queue depth;
//! - [`drain`]: runs every due job to completion, for tests and one-off commands.

pub mod connections;
pub mod dead_letter;
pub mod drain;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod restart;
pub mod retention;
pub mod runner;
pub mod settings;
pub mod task_span;
pub mod workers;

pub use billhook_core::jobs::{EnqueueError, Job, push};
pub use error::JobError;
pub use metrics::QueueMetrics;
pub use runner::{Backoff, JobKind, Runner};
pub use settings::QueueSettings;
pub use workers::{Ended, Workers};
