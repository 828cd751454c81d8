//! billhook-worker: the daemon that applies stored Stripe events exactly once, and the
//! operator's commands around it (migrate, requeue, dead letters, ledger, orders, dunning).
//!
//! - [`queue`]: the job queue, the only module that knows its engine and tables: job kinds,
//!   enqueueing, the runner, retries, dead letters and requeue, retention, restarts;
//! - [`billing`]: applying an event to the mirror and the business state (ProcessEvent);
//! - [`email`], [`notify`], [`dunning`]: the follow-up work an event sets off, each a job kind;
//! - [`stripe`]: what every feature knows about Stripe (both API shapes, money, the API and
//!   its paged lists);
//! - [`reconcile`]: recovering events webhooks did not deliver, from Stripe's Events API;
//! - [`schedule`]: periodic tasks inside `run`, one run at a time across processes;
//! - [`alerts`]: rules evaluated every minute, incidents, and messages to the people on call;
//! - [`summary`]: the daily summary email of the money and the webhooks;
//! - [`retention`]: removing what finished work leaves behind once past its time;
//! - [`sync`]: the first sync of an existing Stripe account into the mirror;
//! - [`daemon`]: `billhook-worker run`, its settings, admin listener and metrics;
//! - [`console`]: the operator console (crate `billhook-console`) wired to this worker's actions;
//! - [`cli`]: the command line.
//!
//! Errors: job handlers return [`queue::JobError`] (retryable or permanent); commands and
//! set-up return `anyhow::Result`.

pub mod alerts;
pub mod billing;
pub mod cli;
pub mod console;
pub mod daemon;
pub mod dunning;
pub mod email;
pub mod notify;
pub mod queue;
pub mod reconcile;
pub mod retention;
pub mod schedule;
pub mod stripe;
pub mod summary;
pub mod sync;
