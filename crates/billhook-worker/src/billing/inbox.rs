//! The worker's view of `webhook_events`: lock a stored event, read its payload, and keep its
//! status, attempts and last error true.

use sqlx::PgConnection;

use super::audit::AuditEntry;

#[derive(Debug, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub body: Vec<u8>,
    pub status: String,
    /// The Stripe object whose advisory lock [`lock`] took (`object_id` as the receiver
    /// stored it); `None` when it took none.
    pub locked_object: Option<String>,
}

impl StoredEvent {
    /// Applied, ignored and stale events are finished: a replay of their job does nothing.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "applied" | "ignored" | "stale")
    }
}

/// Locks the event row for the rest of the transaction (`FOR UPDATE`), so two runs of one job
/// never apply it side by side, and, in the same statement, takes the transaction's advisory
/// lock on the Stripe object the event is about (`object_id`, stored by the receiver; the key
/// [`crate::billing::effects::lock_key`] takes), so two events for one object never interleave. One
/// round trip instead of two, on every event's path.
///
/// Every run of a ProcessEvent job takes the object's lock while it takes the row's, before
/// any other lock, so two runs cannot wait on each other in opposite orders.
pub async fn lock(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<StoredEvent>> {
    sqlx::query_as(
        "SELECT id, type, created, received_at, body, status, object_id AS locked_object,
                pg_advisory_xact_lock(hashtextextended(object_id, 0)) IS NOT NULL AS object_locked
           FROM webhook_events
          WHERE id = $1
          FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Marks the event finished with `status` (`applied`, `ignored` or `stale`) and, in the same
/// statement, writes the audit entries applying it produced.
pub async fn finish(
    conn: &mut PgConnection,
    id: &str,
    status: &str,
    attempt: Option<u32>,
    audit: &[AuditEntry],
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH audit AS (
             INSERT INTO audit_log (event_id, entity, entity_id, action, detail)
             SELECT $1, a.entity, a.entity_id, a.action, a.detail
               FROM jsonb_to_recordset($4) AS a(entity text, entity_id text, action text, detail jsonb))
         UPDATE webhook_events SET status = $2, applied_at = now(), updated_at = now(),
                attempts = coalesce($3, attempts + 1)
          WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(attempt.map(|a| a as i32))
    .bind(sqlx::types::Json(audit))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt, outside the (rolled back) processing transaction and inside the
/// one that records the failure.
pub async fn record_failure(
    conn: &mut PgConnection,
    id: &str,
    attempt: u32,
    error: &str,
    dead: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_events SET status = $2, attempts = $3, last_error = $4, updated_at = now()
          WHERE id = $1 AND status NOT IN ('applied', 'ignored', 'stale')",
    )
    .bind(id)
    .bind(if dead { "dead" } else { "failed" })
    .bind(attempt as i32)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}
