//! Orders: the list, and one order (by its id or the application's reference) with its
//! ledger entries, emails, notices and audit entries.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Keyed, Page, json_row, json_rows, keyed_page, one_of};
use crate::api::{ApiError, cursor, limit};

/// The statuses an order can have.
pub const STATUSES: &[&str] = &[
    "pending",
    "paid",
    "fulfilled",
    "fulfillment_failed",
    "failed",
    "cancelled",
    "refunded",
    "partially_refunded",
];

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub customer: Option<String>,
    /// The application's own order id.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub reference: Option<String>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<Value>, ApiError> {
    one_of("status", filter.status.as_deref(), STATUSES)?;
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<Keyed> = sqlx::query_as(
        "SELECT created_at, id, jsonb_build_object('id', id, 'reference', reference, \
                'status', status, 'amount', amount, 'currency', currency, \
                'customer_id', customer_id, 'customer_email', customer_email, \
                'checkout_ref', checkout_ref, 'paid_at', paid_at, 'created_at', created_at, \
                'updated_at', updated_at) \
           FROM orders \
          WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR customer_id = $2) \
            AND ($3::text IS NULL OR reference = $3) \
            AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5)) \
          ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(&filter.status)
    .bind(&filter.customer)
    .bind(&filter.reference)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(keyed_page(rows, limit))
}

/// One order by its id (`ord_…`) or the application's reference.
pub async fn show(pool: &PgPool, key: &str) -> Result<Value, ApiError> {
    let order = json_row(
        pool,
        "SELECT jsonb_build_object('id', id, 'reference', reference, 'status', status, \
                'amount', amount, 'currency', currency, 'amount_refunded', amount_refunded, \
                'customer_id', customer_id, 'customer_email', customer_email, \
                'checkout_ref', checkout_ref, 'payment_intent_id', payment_intent_id, \
                'failure_reason', failure_reason, 'created_by', created_by, 'paid_at', paid_at, \
                'created_at', created_at, 'updated_at', updated_at) \
           FROM orders WHERE id = $1 OR reference = $1 \
          ORDER BY (id = $1) DESC LIMIT 1",
        key,
        "order",
    )
    .await?;
    let id = order["id"].as_str().unwrap_or(key).to_owned();
    let ledger_entries = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'customer_id', customer_id, 'kind', kind, \
                'source', source, 'amount', amount, 'unit', unit, 'event_id', event_id, \
                'created_at', created_at) \
           FROM ledger_entries WHERE order_id = $1 ORDER BY id",
        &id,
    )
    .await?;
    let emails = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'template', template, 'recipient', recipient, \
                'status', status, 'created_at', created_at, 'sent_at', sent_at) \
           FROM emails WHERE source = $1 ORDER BY created_at, id",
        &id,
    )
    .await?;
    let notices = json_rows(
        pool,
        "SELECT jsonb_build_object('id', n.id, 'type', n.type, 'status', n.status, \
                'created_at', n.created_at, 'delivered_at', n.delivered_at) \
           FROM app_notifications n \
          WHERE n.event_id IN (SELECT event_id FROM audit_log \
                                WHERE entity = 'order' AND entity_id = $1 AND event_id IS NOT NULL) \
            AND n.type LIKE 'order.%' \
          ORDER BY n.created_at, n.id",
        &id,
    )
    .await?;
    let audit = json_rows(
        pool,
        "SELECT jsonb_build_object('action', action, 'detail', detail, 'actor', actor, \
                'event_id', event_id, 'at', at) \
           FROM audit_log WHERE entity = 'order' AND entity_id = $1 ORDER BY id",
        &id,
    )
    .await?;
    Ok(json!({
        "order": order,
        "ledger_entries": ledger_entries,
        "emails": emails,
        "notices": notices,
        "audit": audit,
    }))
}
