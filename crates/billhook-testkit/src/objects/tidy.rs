//! Stripe's example objects made to belong to a story: what concerns nothing in it is dropped,
//! and the ids, dates and amounts its objects still carry from Stripe's examples become the
//! story's. For the trigger's stories and examples; the billing scenarios keep the examples as
//! they are.

use serde_json::{Value, json};

use super::{Cast, DAY};

/// Parts of Stripe's example objects that concern nothing in a story (a discount, a pending
/// update, a transfer, shipping, a scheduled cancellation…), all nullable in Stripe's API.
const NOT_IN_A_STORY: &[&str] = &[
    "billing_cycle_anchor_config",
    "cancel_at",
    "currency_conversion",
    "discount",
    "due_date",
    "from_invoice",
    "last_finalization_error",
    "next_payment_attempt",
    "next_pending_invoice_item_invoice",
    "payment_method_configuration_details",
    "pending_invoice_item_interval",
    "pending_update",
    "shipping_cost",
    "source",
    "transfer_data",
    "webhooks_delivered_at",
];

/// `event`, its object made to belong to `cast`'s story.
pub fn tidy(mut event: Value, cast: &Cast) -> Value {
    let object = &mut event["data"]["object"];
    for key in NOT_IN_A_STORY {
        if let Some(value) = object.get_mut(*key) {
            *value = Value::Null;
        }
    }
    match object["object"].as_str() {
        Some("subscription") => tidy_subscription(object),
        Some("invoice") => tidy_invoice(object, cast),
        Some("checkout.session") => {
            object["expires_at"] = (object["created"].as_i64().unwrap_or(0) + DAY).into();
            set_present(
                object,
                "total_details",
                json!({ "amount_discount": 0,
                "amount_shipping": 0, "amount_tax": 0 }),
            );
        }
        _ => {}
    }
    event
}

fn tidy_subscription(subscription: &mut Value) {
    subscription["billing_cycle_anchor"] = subscription["start_date"].clone();
    set_present(subscription, "billing_schedules", json!([]));
    let created = subscription["created"].clone();
    if let Some(items) = subscription["items"]["data"].as_array_mut() {
        for item in items {
            item["price"]["created"] = created.clone();
            item["price"]["transform_quantity"] = Value::Null;
            let price = item["price"].clone();
            let plan = &mut item["plan"];
            plan["created"] = created.clone();
            plan["amount"] = price["unit_amount"].clone();
            plan["amount_decimal"] = price["unit_amount"]
                .as_i64()
                .unwrap_or(0)
                .to_string()
                .into();
            plan["billing_scheme"] = "per_unit".into();
            plan["interval"] = price["recurring"]["interval"].clone();
            plan["interval_count"] = price["recurring"]["interval_count"].clone();
            plan["livemode"] = false.into();
            plan["transform_usage"] = Value::Null;
        }
    }
}

fn tidy_invoice(invoice: &mut Value, cast: &Cast) {
    let amount = invoice["amount_due"].clone();
    for key in [
        "subtotal",
        "subtotal_excluding_tax",
        "total",
        "total_excluding_tax",
    ] {
        set_present(invoice, key, amount.clone());
    }
    set_present(invoice, "amount_overpaid", 0.into());
    invoice["effective_at"] = invoice["status_transitions"]["finalized_at"].clone();
    let period = json!({ "start": invoice["period_start"], "end": invoice["period_end"] });
    let created = invoice["created"].clone();
    invoice["lines"]["url"] = format!(
        "/v1/invoices/{}/lines",
        invoice["id"].as_str().unwrap_or("")
    )
    .into();
    if let Some(lines) = invoice["lines"]["data"].as_array_mut() {
        for line in lines {
            line["period"] = period.clone();
            line["description"] = "1 × Billhook example plan (at $20.00 / month)".into();
            set_present(line, "amount_excluding_tax", amount.clone());
            set_present(line, "unit_amount_excluding_tax", amount.to_string().into());
            set_present(line, "subtotal", amount.clone());
            if line["price"].is_object() {
                // Up to 2025-02-24 a line carries its price.
                line["price"]["id"] = cast.price.as_str().into();
                line["price"]["created"] = created.clone();
                line["price"]["product"] = cast.product.as_str().into();
                line["price"]["unit_amount"] = amount.clone();
                line["price"]["unit_amount_decimal"] = amount.to_string().into();
            }
            if line["parent"].is_object() {
                line["parent"] = json!({
                    "type": "subscription_item_details",
                    "invoice_item_details": null,
                    "subscription_item_details": {
                        "invoice_item": null, "proration": false,
                        "proration_details": { "credited_items": null },
                        "subscription": cast.subscription, "subscription_item": cast.item,
                    },
                });
            }
        }
    }
    if let Some(payments) = invoice["payments"]["data"].as_array_mut() {
        for payment in payments {
            payment["created"] = created.clone();
        }
    }
}

/// Sets `key` of `object` when the example has it (one API shape may not).
fn set_present(object: &mut Value, key: &str, value: Value) {
    if let Some(slot) = object.get_mut(key) {
        *slot = value;
    }
}
