//! The ingest transaction: the event row and its ProcessEvent job commit together or not at
//! all. A crash between the two is impossible, not unlikely.

use billhook_core::jobs::{self, EnqueueError, ProcessEvent};
use billhook_core::stripe::{Envelope, Verified};
use sqlx::{PgConnection, PgPool};

/// A verified delivery, ready to store.
pub struct Delivery<'a> {
    pub envelope: &'a Envelope,
    pub verified: &'a Verified,
    pub body: &'a [u8],
    pub headers: serde_json::Value,
    /// False for event types the worker has no handler for: stored as `ignored`, no job.
    pub handled: bool,
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
}

impl IngestError {
    /// True when the database could not be reached in time (down, or pool exhausted).
    pub fn is_unavailable(&self) -> bool {
        let db = match self {
            Self::Database(e) => e,
            Self::Enqueue(EnqueueError::Insert(apalis_postgres::Error::Database(e))) => e,
            Self::Enqueue(_) => return false,
        };
        matches!(
            db,
            sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
        )
    }
}

/// Stores the delivery and, when it is new and handled, enqueues its job, in one transaction.
/// Every error propagates: after a failed statement PostgreSQL has rolled back, and a
/// swallowed error would commit nothing while claiming success.
pub async fn store(
    pool: &PgPool,
    delivery: &Delivery<'_>,
    max_attempts: u32,
) -> Result<Stored, IngestError> {
    let mut tx = pool.begin().await?;
    if !insert_event(&mut tx, delivery).await? {
        tx.rollback().await?;
        return Ok(Stored::Duplicate);
    }
    if delivery.handled {
        let job = ProcessEvent::new(delivery.envelope.id.clone());
        jobs::push_process_event(&mut tx, &job, max_attempts).await?;
    }
    tx.commit().await?;
    Ok(Stored::New)
}

/// Inserts the event unless its id is already stored; true when the row is new.
async fn insert_event(conn: &mut PgConnection, d: &Delivery<'_>) -> Result<bool, sqlx::Error> {
    let e = d.envelope;
    let status = if d.handled { "received" } else { "ignored" };
    let result = sqlx::query(
        "INSERT INTO webhook_events \
           (id, type, api_version, livemode, account, created, signed_at, body, headers, secret_label, status) \
         VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7), $8, $9, $10, $11) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(e.id.as_str())
    .bind(&e.event_type)
    .bind(e.api_version.as_deref())
    .bind(e.livemode)
    .bind(e.account.as_deref())
    .bind(e.created as f64)
    .bind(d.verified.timestamp as f64)
    .bind(d.body)
    .bind(&d.headers)
    .bind(&d.verified.secret_label)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}
