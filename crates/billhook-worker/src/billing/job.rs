//! Apply one stored Stripe event, in one transaction: lock the event, skip it if finished,
//! lock the Stripe object it is about, apply it, mark it applied.

use std::sync::Arc;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use super::context::Context;
use super::effects;
use super::event::{Applied, Event};
use super::inbox;
use super::metrics::EventMetrics;
use crate::queue::jobs::ProcessEvent;
use crate::queue::{JobError, JobKind};

pub struct ProcessEventJob {
    pool: PgPool,
    metrics: EventMetrics,
    context: Context,
    /// Events applied at once by this process. Each holds a connection for its whole
    /// transaction, so no more than the pool has free for them ([`crate::queue::connections`]):
    /// the rest of what the queue fetched waits here, for as long as it takes, instead of
    /// failing on the pool's timeout.
    slots: Arc<Semaphore>,
}

impl ProcessEventJob {
    /// `slots`: how many events may be applied at once (at least one).
    pub fn new(pool: PgPool, metrics: EventMetrics, context: Context, slots: u32) -> Self {
        let slots = (slots.max(1) as usize).min(Semaphore::MAX_PERMITS);
        Self {
            pool,
            metrics,
            context,
            slots: Arc::new(Semaphore::new(slots)),
        }
    }
}

impl JobKind for ProcessEventJob {
    type Args = ProcessEvent;

    fn event_id(args: &serde_json::Value) -> Option<String> {
        args.get("event_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    #[tracing::instrument(name = "process_event", skip_all,
        fields(event_id = %args.event_id(), event_type = tracing::field::Empty))]
    async fn run(&self, args: ProcessEvent) -> Result<(), JobError> {
        let id = args.event_id().as_str();
        // Never closed: the semaphore lives as long as the job.
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|e| JobError::Retryable(e.into()))?;
        let mut tx = self.pool.begin().await?;
        let Some(stored) = inbox::lock(&mut tx, id).await? else {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "event {id} is not stored"
            )));
        };
        tracing::Span::current().record("event_type", stored.event_type.as_str());
        if stored.is_finished() {
            tracing::info!(status = %stored.status, "event already finished; nothing to do");
            return Ok(());
        }
        let event = Event::parse(&stored)?;
        if let Some(object_id) = event.object_id()
            && stored.locked_object.as_deref() != Some(object_id)
        {
            // Two events for one Stripe object never interleave; released at commit.
            // `inbox::lock` has taken it already for every event stored with its object id.
            effects::lock_key(&mut tx, object_id).await?;
        }
        let applied = super::apply(&mut tx, &self.context, &event).await?;
        let status = match applied {
            Applied::Applied => "applied",
            Applied::Stale => "stale",
            Applied::Ignored => "ignored",
        };
        inbox::finish(&mut tx, id, status, None, &event.take_audit()).await?;
        tx.commit()
            .await
            .context("commit")
            .map_err(JobError::Retryable)?;
        self.metrics
            .event_finished(&stored.event_type, status, stored.received_at);
        tracing::info!(status, "event processed");
        Ok(())
    }

    async fn record_failure(
        &self,
        conn: &mut sqlx::PgConnection,
        args: &serde_json::Value,
        attempt: u32,
        error: &str,
        dead: bool,
    ) -> anyhow::Result<()> {
        if let Some(id) = Self::event_id(args) {
            inbox::record_failure(conn, &id, attempt, error, dead).await?;
        }
        Ok(())
    }
}
