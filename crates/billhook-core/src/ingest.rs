//! The ingest transaction: event rows and their ProcessEvent jobs commit together or not at
//! all. A crash between the two is impossible, not unlikely.
//!
//! Every stored event comes through here, whichever way it reached Billhook ([`Origin`]): a
//! signed webhook delivery (the receiver) or an event recovered from Stripe's Events API (the
//! worker's reconciliation). The rows and the job are the same; only the recorded origin
//! differs, so a recovered event is applied like any other and a later webhook delivery of it
//! is a duplicate.
//!
//! Deliveries are stored in batches: one transaction inserts every event of the batch with one
//! statement and pushes the jobs of the new, handled ones with one `push_tasks`. The receiver's
//! writers form the batches from the requests in flight (a batch of one is the ordinary case
//! when traffic is light); reconciliation stores a page of the Events API at a time.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use sqlx::{PgConnection, PgPool};

use crate::db::errors::{self, Class};
use crate::jobs::{self, EnqueueError, TracingContext};
use crate::stripe::{Envelope, Verified};

/// How an event reached Billhook; stored in `webhook_events.origin`.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A webhook delivery whose signature verified: its `t=` and the secret that matched are
    /// stored with it.
    Webhook(Verified),
    /// Listed by Stripe's Events API during reconciliation: no delivery, so no signature.
    EventsApi,
}

impl Origin {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::EventsApi => "events_api",
        }
    }
}

/// A verified delivery or a recovered event, ready to store.
pub struct Delivery {
    pub envelope: Envelope,
    pub origin: Origin,
    /// The event's bytes as Stripe sent them (for a webhook, exactly as signed).
    pub body: Bytes,
    /// Selected request headers of a webhook delivery; `{}` for a recovered event.
    pub headers: serde_json::Value,
    /// False for event types the worker has no handler for: stored as `ignored`, no job.
    pub handled: bool,
    /// The W3C trace context of the request (or reconciliation run), carried into the job's
    /// metadata.
    pub trace: TracingContext,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("cannot enqueue the ProcessEvent job")]
    Enqueue(#[from] EnqueueError),
    /// The batch this delivery was part of failed; shared by every delivery in it.
    #[error("the batch it was stored with failed")]
    Batch(#[source] Arc<IngestError>),
    /// The receiver's ingest writers are gone (the receiver is stopping).
    #[error("the ingest writers have stopped")]
    Stopped,
}

impl IngestError {
    /// What the database said, if it was the database ([`errors::classify`]). The writers
    /// having stopped counts as unavailable.
    fn class(&self) -> Class {
        match self {
            Self::Database(e) => errors::classify(e),
            Self::Enqueue(e) => e.database_class(),
            Self::Batch(e) => e.class(),
            Self::Stopped => Class::Unavailable,
        }
    }

    /// True when a retry may cure it: the database was down, restarting, out of connections,
    /// or dropped the connection. The receiver answers 503 then.
    pub fn is_unavailable(&self) -> bool {
        self.class() == Class::Unavailable
    }

    /// True when PostgreSQL refused the delivery's data itself (a value out of range, an
    /// entry too large): the request is malformed, and sending it again cannot help.
    pub fn is_bad_data(&self) -> bool {
        self.class() == Class::Permanent
    }
}

/// Stores one delivery and, when it is new and handled, enqueues its job, in one transaction.
pub async fn store(
    pool: &PgPool,
    delivery: &Delivery,
    max_attempts: u32,
) -> Result<Stored, IngestError> {
    let mut stored = store_batch(pool, std::slice::from_ref(delivery), max_attempts).await?;
    Ok(stored.pop().unwrap_or(Stored::Duplicate))
}

/// Stores every delivery of the batch and enqueues the jobs of the new, handled ones, all in
/// one transaction; the answer lists one outcome per delivery, in order. A delivery whose
/// event id is already stored, or appears earlier in the same batch, is a duplicate.
///
/// Every error propagates: after a failed statement PostgreSQL has rolled back, and a
/// swallowed error would commit nothing while claiming success. An error fails the whole
/// batch; [`crate::writer`] then stores its deliveries one by one, so one bad delivery cannot
/// fail the others.
pub async fn store_batch(
    pool: &PgPool,
    deliveries: &[Delivery],
    max_attempts: u32,
) -> Result<Vec<Stored>, IngestError> {
    let mut first_of_id: HashMap<&str, usize> = HashMap::with_capacity(deliveries.len());
    let unique: Vec<&Delivery> = deliveries
        .iter()
        .enumerate()
        .filter(|(i, d)| *first_of_id.entry(d.envelope.id.as_str()).or_insert(*i) == *i)
        .map(|(_, d)| d)
        .collect();

    let mut tx = pool.begin().await?;
    let inserted = insert_events(&mut tx, &unique).await?;
    if inserted.is_empty() {
        tx.rollback().await?;
        return Ok(vec![Stored::Duplicate; deliveries.len()]);
    }
    let jobs = unique
        .iter()
        .filter(|d| d.handled && inserted.contains(d.envelope.id.as_str()))
        .map(|d| (&d.envelope.id, &d.trace));
    jobs::push_process_events(&mut tx, jobs, max_attempts).await?;
    tx.commit().await?;

    Ok(deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let id = d.envelope.id.as_str();
            if first_of_id.get(id) == Some(&i) && inserted.contains(id) {
                Stored::New
            } else {
                Stored::Duplicate
            }
        })
        .collect())
}

/// Inserts the events whose ids are not stored yet, in one statement; returns the new ids.
async fn insert_events(
    conn: &mut PgConnection,
    deliveries: &[&Delivery],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut ids = Vec::with_capacity(deliveries.len());
    let mut types = Vec::with_capacity(deliveries.len());
    let mut api_versions = Vec::with_capacity(deliveries.len());
    let mut livemodes = Vec::with_capacity(deliveries.len());
    let mut accounts = Vec::with_capacity(deliveries.len());
    let mut created = Vec::with_capacity(deliveries.len());
    let mut signed_at = Vec::with_capacity(deliveries.len());
    let mut bodies = Vec::with_capacity(deliveries.len());
    let mut headers = Vec::with_capacity(deliveries.len());
    let mut labels = Vec::with_capacity(deliveries.len());
    let mut statuses = Vec::with_capacity(deliveries.len());
    let mut objects = Vec::with_capacity(deliveries.len());
    let mut origins = Vec::with_capacity(deliveries.len());
    let mut customers = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let e = &d.envelope;
        ids.push(e.id.as_str());
        types.push(e.event_type.as_str());
        api_versions.push(e.api_version.as_deref());
        livemodes.push(e.livemode);
        accounts.push(e.account.as_deref());
        created.push(e.created as f64);
        let verified = match &d.origin {
            Origin::Webhook(verified) => Some(verified),
            Origin::EventsApi => None,
        };
        signed_at.push(verified.map(|v| v.timestamp as f64));
        labels.push(verified.map(|v| v.secret_label.as_str()));
        bodies.push(d.body.as_ref());
        headers.push(&d.headers);
        statuses.push(if d.handled { "received" } else { "ignored" });
        objects.push(e.object_id.as_deref());
        origins.push(d.origin.as_str());
        customers.push(e.customer_id.as_deref());
    }
    let new_ids: Vec<String> = sqlx::query_scalar(
        "INSERT INTO webhook_events \
           (id, type, api_version, livemode, account, created, signed_at, body, headers, secret_label, \
            status, object_id, origin, customer_id) \
         SELECT id, type, api_version, livemode, account, to_timestamp(created), to_timestamp(signed_at), \
                body, headers, secret_label, status, object_id, origin, customer_id \
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::float8[], \
                       $7::float8[], $8::bytea[], $9::jsonb[], $10::text[], $11::text[], $12::text[], \
                       $13::text[], $14::text[]) \
             AS d(id, type, api_version, livemode, account, created, signed_at, body, headers, secret_label, \
                  status, object_id, origin, customer_id) \
         ON CONFLICT (id) DO NOTHING \
         RETURNING id",
    )
    .bind(ids)
    .bind(types)
    .bind(api_versions)
    .bind(livemodes)
    .bind(accounts)
    .bind(created)
    .bind(signed_at)
    .bind(bodies)
    .bind(headers)
    .bind(labels)
    .bind(statuses)
    .bind(objects)
    .bind(origins)
    .bind(customers)
    .fetch_all(conn)
    .await?;
    Ok(new_ids.into_iter().collect())
}
