//! Customers: the mirror of each (customer, subscriptions, invoices, payments, payment
//! methods) with what Billhook keeps about them: entitlements, ledger balance and entries,
//! orders, emails and notices. Payment methods show brand, last four digits and expiry only.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{Keyed, Page, json_row, json_rows, keyed_page};
use crate::api::{ApiError, cursor, limit};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Filter {
    /// Exact address, any case.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub email: Option<String>,
    /// One customer by id.
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub id: Option<String>,
    /// Only deleted (`true`) or only live (`false`) customers.
    pub deleted: Option<bool>,
    pub limit: Option<i64>,
    #[serde(default, deserialize_with = "super::blank_is_none")]
    pub cursor: Option<String>,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<Value>, ApiError> {
    let limit = limit(filter.limit)?;
    let after = filter.cursor.as_deref().map(cursor::decode).transpose()?;
    let rows: Vec<Keyed> = sqlx::query_as(
        "SELECT updated_at, id, jsonb_build_object('id', id, 'email', email, 'name', name, \
                'deleted', deleted, 'livemode', livemode, 'updated_at', updated_at) \
           FROM customers \
          WHERE ($1::text IS NULL OR lower(email) = lower($1)) AND ($2::text IS NULL OR id = $2) \
            AND ($3::bool IS NULL OR deleted = $3) \
            AND ($4::timestamptz IS NULL OR (updated_at, id) < ($4, $5)) \
          ORDER BY updated_at DESC, id DESC LIMIT $6",
    )
    .bind(&filter.email)
    .bind(&filter.id)
    .bind(filter.deleted)
    .bind(after.as_ref().map(|(at, _)| *at))
    .bind(after.as_ref().map(|(_, id)| id.as_str()))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(keyed_page(rows, limit))
}

/// What the customer is entitled to now (the `entitlements` view).
pub async fn entitlements(pool: &PgPool, id: &str) -> Result<Vec<Value>, ApiError> {
    json_rows(
        pool,
        "SELECT jsonb_build_object('subscription_id', subscription_id, 'status', status, \
                'price_id', price_id, 'product_id', product_id, 'quantity', quantity, \
                'current_period_end', current_period_end) \
           FROM entitlements WHERE customer_id = $1 ORDER BY subscription_id, price_id",
        id,
    )
    .await
}

/// The customer's ledger balance per unit (the `ledger_balances` view, as `ledger balance`).
pub async fn balance(pool: &PgPool, id: &str) -> Result<Vec<Value>, ApiError> {
    json_rows(
        pool,
        "SELECT jsonb_build_object('unit', unit, 'balance', balance::bigint) \
           FROM ledger_balances WHERE customer_id = $1 ORDER BY unit",
        id,
    )
    .await
}

/// Fails with 404 unless the mirror knows the customer or the ledger has an account for it
/// (a guest checkout's `email:…` account has no customer row).
pub async fn known(pool: &PgPool, id: &str) -> Result<(), ApiError> {
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1) \
             OR EXISTS (SELECT 1 FROM ledger_entries WHERE customer_id = $1)",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    if known {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no customer {id}")))
    }
}

pub async fn show(pool: &PgPool, id: &str) -> Result<Value, ApiError> {
    let customer = json_row(
        pool,
        "SELECT jsonb_build_object('id', id, 'email', email, 'name', name, 'deleted', deleted, \
                'livemode', livemode, 'updated_at', updated_at, 'last_event_id', last_event_id) \
           FROM customers WHERE id = $1",
        id,
        "customer",
    )
    .await?;
    let subscriptions = json_rows(
        pool,
        "SELECT jsonb_build_object('id', s.id, 'status', s.status, 'status_since', s.status_since, \
                'cancel_at_period_end', s.cancel_at_period_end, \
                'current_period_end', s.current_period_end, 'trial_end', s.trial_end, \
                'canceled_at', s.canceled_at, \
                'items', coalesce((SELECT jsonb_agg(jsonb_build_object('id', i.id, \
                      'price_id', i.price_id, 'product_id', i.product_id, 'quantity', i.quantity) \
                      ORDER BY i.id) FROM subscription_items i WHERE i.subscription_id = s.id), '[]')) \
           FROM subscriptions s WHERE s.customer_id = $1 ORDER BY s.status_since DESC, s.id",
        id,
    )
    .await?;
    let invoices = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'status', status, 'billing_reason', billing_reason, \
                'amount_due', amount_due, 'amount_paid', amount_paid, 'currency', currency, \
                'attempt_count', attempt_count, 'paid_at', paid_at, \
                'subscription_id', subscription_id, 'updated_at', updated_at) \
           FROM invoices WHERE customer_id = $1 ORDER BY updated_at DESC, id DESC LIMIT 50",
        id,
    )
    .await?;
    let payments = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'kind', kind, 'status', status, 'amount', amount, \
                'amount_refunded', amount_refunded, 'currency', currency, \
                'failure_code', failure_code, 'invoice_id', invoice_id, 'updated_at', updated_at) \
           FROM payments WHERE customer_id = $1 ORDER BY updated_at DESC, id DESC LIMIT 50",
        id,
    )
    .await?;
    // Brand, last four and expiry only: never the stored object (fingerprints, addresses).
    let payment_methods = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'type', type, 'brand', card_brand, \
                'last4', object->'card'->>'last4', 'exp_month', object->'card'->'exp_month', \
                'exp_year', object->'card'->'exp_year') \
           FROM payment_methods WHERE customer_id = $1 ORDER BY updated_at DESC, id LIMIT 20",
        id,
    )
    .await?;
    let ledger_entries = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'kind', kind, 'source', source, 'amount', amount, \
                'unit', unit, 'order_id', order_id, 'event_id', event_id, 'reason', reason, \
                'created_by', created_by, 'created_at', created_at) \
           FROM ledger_entries WHERE customer_id = $1 ORDER BY id DESC LIMIT 50",
        id,
    )
    .await?;
    let orders = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'reference', reference, 'status', status, \
                'amount', amount, 'currency', currency, 'paid_at', paid_at, \
                'created_at', created_at) \
           FROM orders WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 50",
        id,
    )
    .await?;
    let emails = json_rows(
        pool,
        "SELECT jsonb_build_object('id', e.id, 'template', e.template, 'subject', e.subject, \
                'status', e.status, 'created_at', e.created_at, 'sent_at', e.sent_at) \
           FROM emails e \
          WHERE lower(e.recipient) = (SELECT lower(email) FROM customers WHERE id = $1) \
          ORDER BY e.created_at DESC, e.id DESC LIMIT 50",
        id,
    )
    .await?;
    let notices = json_rows(
        pool,
        "SELECT jsonb_build_object('id', id, 'type', type, 'status', status, \
                'attempts', attempts, 'created_at', created_at, 'delivered_at', delivered_at) \
           FROM app_notifications WHERE body->'data'->>'customer' = $1 \
          ORDER BY created_at DESC, id DESC LIMIT 50",
        id,
    )
    .await?;
    Ok(json!({
        "customer": customer,
        "subscriptions": subscriptions,
        "invoices": invoices,
        "payments": payments,
        "payment_methods": payment_methods,
        "entitlements": entitlements(pool, id).await?,
        "balance": balance(pool, id).await?,
        "ledger_entries": ledger_entries,
        "orders": orders,
        "emails": emails,
        "notices": notices,
    }))
}
