//! Reading Stripe objects: typed access to JSON fields by dotted path, and the places where the
//! two API shapes differ (up to 2025-02-24, and from 2025-03-31 on).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::queue::JobError;

/// The value at a dotted path (`"parent.subscription_details.subscription"`), if present and
/// not null.
pub fn at<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(object, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

pub fn str_at<'a>(object: &'a Value, path: &str) -> Option<&'a str> {
    at(object, path).and_then(Value::as_str)
}

/// An id field that may be expanded into an object: `"cus_…"` or `{"id": "cus_…", …}`.
pub fn id_at<'a>(object: &'a Value, path: &str) -> Option<&'a str> {
    at(object, path).and_then(|v| v.as_str().or_else(|| v.get("id").and_then(Value::as_str)))
}

pub fn i64_at(object: &Value, path: &str) -> Option<i64> {
    at(object, path).and_then(Value::as_i64)
}

pub fn bool_at(object: &Value, path: &str) -> Option<bool> {
    at(object, path).and_then(Value::as_bool)
}

/// A Unix timestamp field as a time.
pub fn time_at(object: &Value, path: &str) -> Option<DateTime<Utc>> {
    i64_at(object, path).and_then(|t| DateTime::from_timestamp(t, 0))
}

/// A field the handler cannot do without: its absence is a payload no retry will cure.
pub fn required_str<'a>(object: &'a Value, path: &str) -> Result<&'a str, JobError> {
    id_at(object, path)
        .with_context(|| format!("the object has no {path}"))
        .map_err(JobError::Permanent)
}

pub fn required_i64(object: &Value, path: &str) -> Result<i64, JobError> {
    i64_at(object, path)
        .with_context(|| format!("the object has no integer {path}"))
        .map_err(JobError::Permanent)
}

/// The subscription an invoice belongs to: `invoice.subscription` up to 2025-02-24,
/// `invoice.parent.subscription_details.subscription` from 2025-03-31.
pub fn invoice_subscription(invoice: &Value) -> Option<&str> {
    id_at(invoice, "subscription")
        .or_else(|| id_at(invoice, "parent.subscription_details.subscription"))
}

/// The PaymentIntent that paid (or tried to pay) an invoice: `invoice.payment_intent` up to
/// 2025-02-24; from 2025-03-31 the invoice payments, when the event carries them (the default
/// payment first).
pub fn invoice_payment_intent(invoice: &Value) -> Option<&str> {
    if let Some(pi) = id_at(invoice, "payment_intent") {
        return Some(pi);
    }
    let payments = at(invoice, "payments.data")?.as_array()?;
    let default_first = payments
        .iter()
        .filter(|p| bool_at(p, "is_default") == Some(true))
        .chain(payments.iter());
    default_first
        .filter_map(|p| id_at(p, "payment.payment_intent"))
        .next()
}

/// The items of a subscription, as listed in the object.
pub fn subscription_items(subscription: &Value) -> &[Value] {
    at(subscription, "items.data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The subscription's billing period: on the subscription up to 2025-02-24; from 2025-03-31
/// only on its items, where the period shown is the earliest start and the earliest end.
pub fn subscription_period(subscription: &Value) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let own = (
        time_at(subscription, "current_period_start"),
        time_at(subscription, "current_period_end"),
    );
    if own.0.is_some() || own.1.is_some() {
        return own;
    }
    let items = subscription_items(subscription);
    let start = items
        .iter()
        .filter_map(|i| time_at(i, "current_period_start"))
        .min();
    let end = items
        .iter()
        .filter_map(|i| time_at(i, "current_period_end"))
        .min();
    (start, end)
}

/// The e-mail address a payment's receipt goes to, from wherever the object carries one.
pub fn email_of(object: &Value) -> Option<&str> {
    [
        "receipt_email",
        "customer_email",
        "customer_details.email",
        "billing_details.email",
        "email",
    ]
    .iter()
    .find_map(|p| str_at(object, p))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_invoice_subscription_is_read_in_both_shapes() {
        assert_eq!(
            invoice_subscription(&json!({"subscription": "sub_1"})),
            Some("sub_1")
        );
        assert_eq!(
            invoice_subscription(&json!({"subscription": null,
                "parent": {"subscription_details": {"subscription": "sub_2"}}})),
            Some("sub_2")
        );
        assert_eq!(invoice_subscription(&json!({"parent": null})), None);
    }

    #[test]
    fn the_invoice_payment_intent_prefers_the_default_payment() {
        let invoice = json!({"payments": {"data": [
            {"is_default": false, "payment": {"type": "payment_intent", "payment_intent": "pi_old"}},
            {"is_default": true, "payment": {"type": "payment_intent", "payment_intent": {"id": "pi_new"}}}
        ]}});
        assert_eq!(invoice_payment_intent(&invoice), Some("pi_new"));
        assert_eq!(
            invoice_payment_intent(&json!({"payment_intent": "pi_1"})),
            Some("pi_1")
        );
    }

    #[test]
    fn the_period_comes_from_the_items_when_the_subscription_has_none() {
        let sub = json!({"items": {"data": [
            {"current_period_start": 200, "current_period_end": 900},
            {"current_period_start": 100, "current_period_end": 800}
        ]}});
        let (start, end) = subscription_period(&sub);
        assert_eq!(start.map(|t| t.timestamp()), Some(100));
        assert_eq!(end.map(|t| t.timestamp()), Some(800));
        let (start, _) =
            subscription_period(&json!({"current_period_start": 5, "items": {"data": []}}));
        assert_eq!(start.map(|t| t.timestamp()), Some(5));
    }
}
