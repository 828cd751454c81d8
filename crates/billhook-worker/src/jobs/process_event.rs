//! Apply one stored Stripe event, in one transaction: lock the event, skip it if finished,
//! lock the Stripe object it is about, apply it, mark it applied.

use anyhow::Context as _;
use billhook_core::jobs::{PROCESS_EVENT_QUEUE, ProcessEvent};
use sqlx::PgPool;

use crate::billing::{self, Applied, Context, Event};
use crate::events;
use crate::metrics::Metrics;
use crate::runner::{JobError, JobKind};

pub struct ProcessEventJob {
    pub pool: PgPool,
    pub metrics: Metrics,
    pub context: Context,
}

impl JobKind for ProcessEventJob {
    const KIND: &'static str = "process_event";
    const QUEUE: &'static str = PROCESS_EVENT_QUEUE;
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
        let mut tx = self.pool.begin().await?;
        let Some(stored) = events::lock(&mut tx, id).await? else {
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
            // `events::lock` has taken it already for every event stored with its object id.
            billing::lock_key(&mut tx, object_id).await?;
        }
        let applied = billing::apply(&mut tx, &self.context, &event).await?;
        let status = match applied {
            Applied::Applied => "applied",
            Applied::Stale => "stale",
            Applied::Ignored => "ignored",
        };
        events::finish(&mut tx, id, status, None, &event.take_audit()).await?;
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
            events::record_failure(conn, &id, attempt, error, dead).await?;
        }
        Ok(())
    }
}
