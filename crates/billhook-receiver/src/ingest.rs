//! The ingest transaction: event rows and their ProcessEvent jobs commit together or not at
//! all. A crash between the two is impossible, not unlikely.
//!
//! Deliveries are stored in batches: one transaction inserts every event of the batch with one
//! statement and pushes the jobs of the new, handled ones with one `push_tasks`. The receiver's
//! [`writer`](crate::writer) forms the batches from the requests in flight; a batch of one is
//! the ordinary case when traffic is light.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix_web::web::Bytes;
use billhook_core::db::errors::{self, Class};
use billhook_core::jobs::{self, EnqueueError, TracingContext};
use billhook_core::stripe::{Envelope, Verified};
use sqlx::{PgConnection, PgPool};

/// A verified delivery, ready to store.
pub struct Delivery {
    pub envelope: Envelope,
    pub verified: Verified,
    pub body: Bytes,
    pub headers: serde_json::Value,
    /// False for event types the worker has no handler for: stored as `ignored`, no job.
    pub handled: bool,
    /// The W3C trace context of the request, carried into the job's metadata.
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
    /// The ingest writers are gone (the receiver is stopping).
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
    for d in deliveries {
        let e = &d.envelope;
        ids.push(e.id.as_str());
        types.push(e.event_type.as_str());
        api_versions.push(e.api_version.as_deref());
        livemodes.push(e.livemode);
        accounts.push(e.account.as_deref());
        created.push(e.created as f64);
        signed_at.push(d.verified.timestamp as f64);
        bodies.push(d.body.as_ref());
        headers.push(&d.headers);
        labels.push(d.verified.secret_label.as_str());
        statuses.push(if d.handled { "received" } else { "ignored" });
        objects.push(e.object_id.as_deref());
    }
    let new_ids: Vec<String> = sqlx::query_scalar(
        "INSERT INTO webhook_events \
           (id, type, api_version, livemode, account, created, signed_at, body, headers, secret_label, \
            status, object_id) \
         SELECT id, type, api_version, livemode, account, to_timestamp(created), to_timestamp(signed_at), \
                body, headers, secret_label, status, object_id \
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::float8[], \
                       $7::float8[], $8::bytea[], $9::jsonb[], $10::text[], $11::text[], $12::text[]) \
             AS d(id, type, api_version, livemode, account, created, signed_at, body, headers, secret_label, \
                  status, object_id) \
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
    .fetch_all(conn)
    .await?;
    Ok(new_ids.into_iter().collect())
}
