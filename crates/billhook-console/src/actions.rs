//! What the console can do, as opposed to read: provided by `billhook-worker`, which owns the
//! job queue, so an action from the console runs the very code the command line runs (no
//! second implementation of requeue).

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

/// Which dead letters a requeue applies to (selectors combine with AND; none: every one not
/// yet requeued).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RequeueRequest {
    #[serde(default)]
    pub job_ids: Vec<String>,
    #[serde(default)]
    pub event_ids: Vec<String>,
    /// An event type (for ProcessEvent) or a job kind.
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Why; required, stored with the requeue.
    #[serde(default)]
    pub reason: String,
    /// Only count and list what would be requeued.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a requeue did (or, in a dry run, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Requeued {
    pub count: usize,
    pub job_ids: Vec<String>,
    pub dry_run: bool,
}

pub trait Actions: Send + Sync + 'static {
    /// Requeues the selected dead letters, recording `by` and `reason`.
    fn requeue<'a>(
        &'a self,
        request: &'a RequeueRequest,
        by: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Requeued>>;
}
