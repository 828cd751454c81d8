//! The first sync of an existing Stripe account (`billhook-worker sync`): every object of the
//! chosen types, read through Stripe's list endpoints and written into the mirror, so that
//! Billhook starts from what the account already has rather than from the first webhook.
//!
//! - **Mirror only.** Each object goes through the same mirror write as its event handler
//!   (`billing::customer::write_mirror`, …) and nothing else: no emails, notices, ledger
//!   entries, dunning runs or orders for the past. Audited as `synced` (actor `sync`, the run
//!   in the detail); mirror rows name `sync:<run id>` as their `last_event_id`.
//! - **Versions.** An object listed by a request sent at Unix second T has the version
//!   (T, the object's own time fields as its handler reads them) and is written through the
//!   same guarded upsert: an event created before T is stale afterwards, one created after T
//!   applies, and a sync never overwrites a newer row (it is counted `kept`). No tie is
//!   settled through the API.
//! - **Locks.** Each object is written holding the transaction-scoped advisory lock that
//!   ProcessEvent takes for its object id, so a sync and an event never interleave on one
//!   object. One transaction per page: its objects, their audit rows and the progress row.
//! - **One at a time, resumable.** A run holds a session-level advisory lock
//!   ([`crate::schedule::TaskLock`], task `sync`) on a connection of its own; a second sync
//!   fails at once ([`SyncError::Busy`]). Runs are recorded in `sync_runs`, their progress per
//!   type (cursor, counts, done) in `sync_progress`. A run that died (still `running`, lock
//!   free) or failed is resumed by the next sync with the same types and `--created-since`:
//!   types done are skipped, the others continue after their last committed page. `--fresh`
//!   starts a new run instead.
//! - **Rate.** Every request waits for the client's rate limit (`BILLHOOK_STRIPE_API_RATE`);
//!   429s and 5xx are retried as [`crate::stripe::list`] says. A key Stripe refuses fails the
//!   run at once; Stripe unavailable after the retries fails it too, resumable.
//!
//! Files: [`types`] (what each type lists and how it is written), [`run`] (the run's records
//! and resume), [`listing`] (a type's pages), [`page`] (one page's transaction), [`progress`]
//! (the live lines or log lines), [`summary`] (the table printed at the end).

pub mod listing;
pub mod page;
pub mod progress;
pub mod run;
pub mod summary;
pub mod types;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::schedule::TaskLock;
use crate::stripe::StripeApi;
use crate::stripe::list::ListError;
pub use progress::Progress;
pub use summary::{Summary, TypeSummary};
pub use types::ObjectType;

/// The name of the sync's lock (see [`TaskLock`]).
pub const TASK: &str = "sync";

/// What to sync.
#[derive(Debug, Clone)]
pub struct Request {
    /// In the order they are listed ([`Request::new`] puts them so).
    pub types: Vec<ObjectType>,
    /// Only objects created since; `None`: all.
    pub created_since: Option<CreatedSince>,
    /// Start a new run even if one with the same types and `created_since` can be resumed.
    pub fresh: bool,
}

impl Request {
    /// `types` in the order `all` lists them, each once.
    pub fn new(
        mut types: Vec<ObjectType>,
        created_since: Option<CreatedSince>,
        fresh: bool,
    ) -> Self {
        types.sort();
        types.dedup();
        Self {
            types,
            created_since,
            fresh,
        }
    }
}

/// `--created-since`: a time, or a duration back from the start of the run (so that resuming
/// a run later means the same objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedSince {
    At(DateTime<Utc>),
    Ago(Duration),
}

/// How an operator goes on after a failed run.
const RESUME: &str = "the same `billhook-worker sync` command resumes it";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another process holds the sync's lock.
    #[error(
        "another sync is running (it holds the sync lock); wait for it to finish, or stop it \
         and run this again to resume"
    )]
    Busy,
    /// Stripe refused or failed; the run is recorded failed and can be resumed.
    #[error("sync run {run} failed: {error} ({RESUME})")]
    Stripe { run: i64, error: ListError },
    /// An object could not be written, or the run's records could not be; recorded failed if
    /// the database let it.
    #[error("sync run {run} failed: {error:#} ({RESUME})")]
    Write { run: i64, error: anyhow::Error },
    /// The database, before a run was recorded.
    #[error("sync could not start: {0}")]
    Database(#[from] sqlx::Error),
}

impl SyncError {
    /// What went wrong, without the run: what `sync_runs.error` records.
    fn cause(&self) -> String {
        match self {
            Self::Stripe { error, .. } => error.to_string(),
            Self::Write { error, .. } => format!("{error:#}"),
            other => other.to_string(),
        }
    }

    /// The run the error ended, once one was recorded.
    pub fn run(&self) -> Option<i64> {
        match self {
            Self::Stripe { run, .. } | Self::Write { run, .. } => Some(*run),
            Self::Busy | Self::Database(_) => None,
        }
    }
}

/// Runs a sync of `request` to its end (or resumes the one it continues), reporting on
/// `progress`. One at a time across processes: [`SyncError::Busy`] at once otherwise.
pub async fn sync(
    pool: &PgPool,
    api: &StripeApi,
    request: &Request,
    progress: &Progress,
) -> Result<Summary, SyncError> {
    let Ok(mut lock) = TaskLock::try_acquire(pool, TASK).await? else {
        return Err(SyncError::Busy);
    };
    let opened = run::open(lock.conn(), request).await?;
    if let Some(note) = opened.resume_note() {
        progress.note(&note);
    }
    let run_id = opened.id;
    let result = listing::Sync {
        pool,
        api,
        run: &opened,
        progress,
    }
    .all()
    .await;
    let error = result.as_ref().err().map(SyncError::cause);
    if let Err(e) = run::finish(lock.conn(), run_id, error.as_deref()).await {
        tracing::warn!(run = run_id, error = %e, "cannot record the sync run's end");
    }
    lock.release().await;
    let types = result?;
    Ok(Summary {
        run: run_id,
        resumed: opened.resumed,
        types,
    })
}
