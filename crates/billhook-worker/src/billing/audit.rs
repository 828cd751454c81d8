//! The append-only audit log: one row per state change, naming the event that caused it.

use serde::Serialize;
use sqlx::PgConnection;

/// One state change an event made, waiting to be written with the event's finish
/// (`super::event::Event::audit`, `super::inbox::finish`).
#[derive(Debug, Serialize)]
pub struct AuditEntry {
    pub entity: String,
    pub entity_id: String,
    pub action: String,
    pub detail: serde_json::Value,
}

pub async fn record(
    conn: &mut PgConnection,
    event_id: &str,
    entity: &str,
    entity_id: &str,
    action: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (event_id, entity, entity_id, action, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_id)
    .bind(entity)
    .bind(entity_id)
    .bind(action)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// A state change made by Billhook itself rather than by an event (a dunning step, say),
/// naming the actor instead.
pub async fn record_by(
    conn: &mut PgConnection,
    actor: &str,
    entity: &str,
    entity_id: &str,
    action: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (event_id, entity, entity_id, action, detail, actor) VALUES (NULL, $1, $2, $3, $4, $5)",
    )
    .bind(entity)
    .bind(entity_id)
    .bind(action)
    .bind(detail)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}
