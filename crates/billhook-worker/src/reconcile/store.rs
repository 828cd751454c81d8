//! One page of Stripe's Events API into the inbox: every handled event whose id is not stored
//! yet is stored and enqueued by the very transaction the receiver uses
//! (`billhook_core::ingest`), with origin `events_api`. Ids already stored are left alone, so
//! an event its webhook delivers during the run, before or after, is stored once.

use billhook_core::ingest::{self, Delivery, Origin, Stored};
use billhook_core::jobs;
use billhook_core::stripe::{Envelope, event_types};
use bytes::Bytes;
use sqlx::PgPool;

use crate::stripe::list::{Page, item_id};

/// What one page held.
#[derive(Debug, Default)]
pub struct PageOutcome {
    /// Events on the page.
    pub seen: usize,
    /// Ids stored by this page (or, in a dry run, that would have been), in page order.
    pub recovered: Vec<String>,
    /// Events that could not be read, each with why; they are skipped, not stored.
    pub unreadable: Vec<String>,
}

pub async fn store_page(
    pool: &PgPool,
    page: &Page,
    dry_run: bool,
    max_attempts: u32,
) -> Result<PageOutcome, ingest::IngestError> {
    let mut outcome = PageOutcome {
        seen: page.data.len(),
        ..PageOutcome::default()
    };
    let trace = jobs::trace_context();
    let mut deliveries = Vec::with_capacity(page.data.len());
    for item in &page.data {
        let body = item.get().as_bytes();
        match Envelope::parse(body) {
            // The listing asks for handled types only; anything else is not ours to store.
            Ok(envelope) if !event_types::is_handled(&envelope.event_type) => {}
            Ok(envelope) => deliveries.push(Delivery {
                envelope,
                origin: Origin::EventsApi,
                body: Bytes::copy_from_slice(body),
                headers: serde_json::json!({}),
                handled: true,
                trace: trace.clone(),
            }),
            Err(e) => outcome.unreadable.push(format!(
                "Stripe listed an event Billhook cannot read ({}): {e}",
                item_id(item).unwrap_or_else(|| "no id".to_owned())
            )),
        }
    }
    if dry_run {
        outcome.recovered = missing(pool, &deliveries).await?;
        return Ok(outcome);
    }
    if deliveries.is_empty() {
        return Ok(outcome);
    }
    let stored = ingest::store_batch(pool, &deliveries, max_attempts).await?;
    outcome.recovered = deliveries
        .iter()
        .zip(stored)
        .filter(|(_, stored)| *stored == Stored::New)
        .map(|(d, _)| d.envelope.id.as_str().to_owned())
        .collect();
    Ok(outcome)
}

/// The ids of `deliveries` not in the inbox, in order.
async fn missing(pool: &PgPool, deliveries: &[Delivery]) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<&str> = deliveries.iter().map(|d| d.envelope.id.as_str()).collect();
    sqlx::query_scalar(
        "SELECT i.id FROM UNNEST($1::text[]) WITH ORDINALITY AS i(id, n) \
          WHERE NOT EXISTS (SELECT 1 FROM webhook_events w WHERE w.id = i.id) ORDER BY i.n",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}
