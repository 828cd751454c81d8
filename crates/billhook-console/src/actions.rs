//! What the console can do, as opposed to read: provided by `billhook-worker`, which owns the
//! job queue and the orders, so an action from the console runs the very code the command line
//! runs (no second implementation of requeue or of marking an order).

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

/// The statuses the application sets on an order.
pub const FULFILMENT_STATUSES: &[&str] = &["fulfilled", "fulfillment_failed"];

/// Marking an order's fulfilment.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MarkOrder {
    /// `fulfilled` or `fulfillment_failed`.
    pub status: String,
    /// Why (optional), kept in the audit entry.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What marking did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MarkedOrder {
    pub id: String,
    pub reference: Option<String>,
    pub from: String,
    pub status: String,
    /// False when the order already had that status (nothing was written).
    pub changed: bool,
}

/// Why an order was not marked.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("no such order")]
    NotFound,
    /// The order's status does not allow it; says which it is.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Why an alert incident was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no such incident")]
    NotFound,
    #[error("the incident is resolved")]
    Resolved,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

pub trait Actions: Send + Sync + 'static {
    /// Requeues the selected dead letters, recording `by` and `reason`.
    fn requeue<'a>(
        &'a self,
        request: &'a RequeueRequest,
        by: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Requeued>>;

    /// Marks the order with id or reference `key` fulfilled or fulfillment_failed, recording
    /// `by` in the audit log.
    fn mark_order<'a>(
        &'a self,
        key: &'a str,
        request: &'a MarkOrder,
        by: &'a str,
    ) -> BoxFuture<'a, Result<MarkedOrder, MarkError>>;

    /// Acknowledges an open alert incident (no more reminders), recording `by`. `Ok(false)`:
    /// it already was.
    fn acknowledge_alert<'a>(
        &'a self,
        id: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<bool, AckError>>;
}
