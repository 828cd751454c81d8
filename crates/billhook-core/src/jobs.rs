//! Job types and how they are enqueued. Jobs carry ids, never payloads: the stored event is
//! the source of truth and a job can always be rebuilt from `webhook_events`. Each job kind has
//! its own queue, named here once so the receiver and the worker cannot disagree.
//!
//! apalis appears here only through `push_tasks`, which writes inside the caller's
//! transaction: the event row and its job commit or roll back together.

use apalis::layers::tracing::{OtelTraceContext, TracingContext};
use apalis::prelude::TaskBuilder;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::stripe::EventId;

/// Queue of [`ProcessEvent`] jobs.
pub const PROCESS_EVENT_QUEUE: &str = "billhook.process_event";

/// Apply one stored Stripe event. The payload stays in `webhook_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum ProcessEvent {
    #[serde(rename = "1")]
    V1 { event_id: EventId },
}

impl ProcessEvent {
    pub fn new(event_id: EventId) -> Self {
        Self::V1 { event_id }
    }

    pub fn event_id(&self) -> &EventId {
        match self {
            Self::V1 { event_id } => event_id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("cannot encode the job argument")]
    Encode(#[from] serde_json::Error),
    #[error("cannot insert the job")]
    Insert(#[from] apalis_postgres::Error),
}

/// Enqueues `ProcessEvent` inside the caller's transaction. The event id is the idempotency
/// key, so the same event can never have two jobs; the current span's trace context rides in
/// the job's metadata so the worker's span continues the receiver's trace.
pub async fn push_process_event(
    conn: &mut PgConnection,
    job: &ProcessEvent,
    max_attempts: u32,
) -> Result<(), EnqueueError> {
    let args = serde_json::to_vec(job)?;
    let trace: TracingContext = OtelTraceContext::current().into();
    let task = TaskBuilder::new(args)
        .idempotency_key(job.event_id().as_str())
        .max_attempts(max_attempts as usize)
        .metadata(&trace)
        .build();
    apalis_postgres::queries::push_tasks(conn, PROCESS_EVENT_QUEUE, vec![task]).await?;
    Ok(())
}
