//! Jobs and how they are enqueued. Jobs carry ids, never payloads: the stored event is the
//! source of truth and a job can always be rebuilt from `webhook_events`. Each job's argument
//! type names its queue ([`Job`]), so a job can only be pushed onto its own queue; the
//! receiver's [`ProcessEvent`] is defined here, the worker's follow-up jobs in its `queue`
//! module.
//!
//! apalis appears here only through `push_tasks` (in [`push`] and [`push_process_events`]),
//! which writes inside the caller's transaction: the row a job is about and the job commit or
//! roll back together.

pub use apalis::layers::tracing::TracingContext;

use apalis::layers::tracing::OtelTraceContext;
use apalis::prelude::TaskBuilder;
use apalis_postgres::PgTask;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::db::errors::{self, Class};
use crate::stripe::EventId;

/// Queue of [`ProcessEvent`] jobs.
pub const PROCESS_EVENT_QUEUE: &str = "billhook.process_event";

/// A job's argument. The type names the job's queue, so [`push`] cannot put it on another
/// kind's queue, and its kind, the stable name in metrics, failures and dead letters.
/// Arguments are versioned enums (`#[serde(tag = "v")]`): a job written by an older release
/// still decodes.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    const QUEUE: &'static str;
    const KIND: &'static str;
}

impl Job for ProcessEvent {
    const QUEUE: &'static str = PROCESS_EVENT_QUEUE;
    const KIND: &'static str = "process_event";
}

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

impl EnqueueError {
    /// The class of the database error behind a failed insert ([`crate::db::errors`]); an
    /// argument that does not encode, or any other failure, is [`Class::Other`].
    pub fn database_class(&self) -> Class {
        match self {
            Self::Insert(apalis_postgres::Error::Database(e)) => errors::classify(e),
            Self::Insert(_) | Self::Encode(_) => Class::Other,
        }
    }
}

/// Enqueues one `ProcessEvent` per event inside the caller's transaction, in one statement,
/// each carrying the W3C trace context of the request that delivered its event. The event id
/// is the idempotency key, so the same event can never have two jobs. Nothing to push is no
/// statement at all.
pub async fn push_process_events<'a>(
    conn: &mut PgConnection,
    events: impl IntoIterator<Item = (&'a EventId, &'a TracingContext)>,
    max_attempts: u32,
) -> Result<(), EnqueueError> {
    let tasks = events
        .into_iter()
        .map(|(id, trace)| {
            let job = ProcessEvent::new(id.clone());
            task(&job, id.as_str(), max_attempts, None, trace)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !tasks.is_empty() {
        apalis_postgres::queries::push_tasks(conn, PROCESS_EVENT_QUEUE, tasks).await?;
    }
    Ok(())
}

/// The trace context of the current span, for a job's metadata.
pub fn trace_context() -> TracingContext {
    OtelTraceContext::current().into()
}

/// Enqueues one job on its queue (`J::QUEUE`) inside the caller's transaction: commit keeps the caller's rows
/// and the job, rollback removes both. The current span's trace context rides in the job's
/// metadata so the worker's span continues the caller's trace.
///
/// `idempotency_key` is unique per queue, finished jobs included: a second push with the same
/// key fails (and with it the caller's transaction), so callers push once per key. `run_at`
/// schedules the job; apalis keeps whole seconds, so it is rounded up and the job never
/// starts before it. `None` is due now.
pub async fn push<J: Job>(
    conn: &mut PgConnection,
    args: &J,
    idempotency_key: &str,
    max_attempts: u32,
    run_at: Option<DateTime<Utc>>,
) -> Result<(), EnqueueError> {
    let task = task(
        args,
        idempotency_key,
        max_attempts,
        run_at,
        &trace_context(),
    )?;
    apalis_postgres::queries::push_tasks(conn, J::QUEUE, vec![task]).await?;
    Ok(())
}

fn task<T: Serialize + ?Sized>(
    args: &T,
    idempotency_key: &str,
    max_attempts: u32,
    run_at: Option<DateTime<Utc>>,
    trace: &TracingContext,
) -> Result<PgTask, EnqueueError> {
    let args = serde_json::to_vec(args)?;
    let mut task = TaskBuilder::new(args)
        .idempotency_key(idempotency_key)
        .max_attempts(max_attempts as usize)
        .metadata(trace);
    if let Some(at) = run_at {
        task = task.run_at_timestamp(whole_seconds_after(at));
    }
    Ok(task.build())
}

/// Unix seconds at or after `at` (0 for times before 1970).
fn whole_seconds_after(at: DateTime<Utc>) -> u64 {
    let seconds = at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0);
    u64::try_from(seconds).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_time_is_rounded_up_to_the_next_whole_second() {
        let exact = DateTime::from_timestamp(1_800_000_000, 0).expect("valid time");
        let later = DateTime::from_timestamp(1_800_000_000, 1).expect("valid time");
        assert_eq!(whole_seconds_after(exact), 1_800_000_000);
        assert_eq!(whole_seconds_after(later), 1_800_000_001);
    }

    #[test]
    fn a_time_before_1970_is_due_at_once() {
        let past = DateTime::from_timestamp(-5, 0).expect("valid time");
        assert_eq!(whole_seconds_after(past), 0);
    }
}
