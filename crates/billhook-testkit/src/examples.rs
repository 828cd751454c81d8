//! The single examples `scripts/trigger.sh TYPE` sends, one per handled event type: an object of
//! a [`Cast`] of its own, dated around now, built like the stories' objects.

use serde_json::Value;

use crate::fixtures::ApiShape;
use crate::objects::{Builder, Cast, DAY, tidy};
use crate::stories::{PURCHASE_AMOUNT, ended, period_is_the_trial, settle_invoice};

/// The single example of `event_type` that `scripts/trigger.sh TYPE` sends: one object of
/// `cast`'s story, created a moment before `now`, its periods starting then and ending a month
/// later. `None` for a type with no example (every handled type has one).
pub fn example(event_type: &str, shape: ApiShape, cast: &Cast, now: i64) -> Option<Value> {
    let b = Builder {
        shape,
        cast,
        t0: now - 100,
    };
    let mut event = match event_type {
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            b.payment_intent(event_type, PURCHASE_AMOUNT)
        }
        "charge.refunded" => {
            let mut event = b.charge_refunded(PURCHASE_AMOUNT, &[(&cast.refund, PURCHASE_AMOUNT)]);
            event["data"]["object"]["receipt_email"] = cast.email.as_str().into();
            event
        }
        "checkout.session.completed" | "checkout.session.expired" => {
            b.session(event_type, "payment", PURCHASE_AMOUNT)
        }
        "customer.created" | "customer.updated" => b.customer(event_type),
        "customer.deleted" => b.deleted_customer(),
        "customer.subscription.deleted" => {
            let mut event = b.subscription(event_type, "canceled", 0);
            ended(&mut event, now);
            event
        }
        "customer.subscription.trial_will_end" => {
            // A short trial: Stripe says it is ending at once.
            let mut event = b.subscription(event_type, "trialing", 0);
            event["data"]["object"]["trial_end"] = (now + 3 * DAY).into();
            period_is_the_trial(&mut event);
            event
        }
        "customer.subscription.paused" => b.subscription(event_type, "paused", 0),
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.resumed" => b.subscription(event_type, "active", 0),
        "invoice.paid" | "invoice.payment_succeeded" => {
            let mut event = b.invoice(event_type, &cast.first_invoice, "paid", 1, 0);
            event["created"] = now.into();
            settle_invoice(&mut event);
            event
        }
        "invoice.payment_failed" => {
            let mut event = b.invoice(event_type, &cast.first_invoice, "open", 1, 0);
            event["data"]["object"]["status_transitions"]["finalized_at"] = now.into();
            event
        }
        "payment_method.attached" => b.payment_method(event_type),
        "payment_method.detached" => {
            let mut event = b.payment_method(event_type);
            event["data"]["object"]["customer"] = Value::Null;
            event
        }
        _ => return None,
    };
    event["created"] = now.into();
    Some(tidy(event, cast))
}

/// What `scripts/trigger.sh TYPE` sends: first the customer the example belongs to
/// (`customer.created`; Billhook addresses a subscription's emails from it), as `stripe trigger`
/// first creates the objects an event needs, then the example. For the customer's own events,
/// the example alone.
pub fn single(event_type: &str, shape: ApiShape, cast: &Cast, now: i64) -> Option<Vec<Value>> {
    let event = example(event_type, shape, cast, now)?;
    let customers_own =
        event_type.starts_with("customer.") && !event_type.starts_with("customer.subscription.");
    let mut events = Vec::new();
    if !customers_own {
        events.extend(example("customer.created", shape, cast, now - 1));
    }
    events.push(event);
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, EVENT_TYPES};

    const NOW: i64 = 1_800_000_000;

    /// Keys whose string values are the ids of Stripe objects.
    const REFERENCES: &[&str] = &[
        "balance_transaction",
        "charge",
        "customer",
        "default_payment_method",
        "id",
        "invoice",
        "invoice_item",
        "latest_charge",
        "payment_intent",
        "payment_method",
        "price",
        "product",
        "quote",
        "subscription",
        "subscription_item",
    ];

    /// The prefixes of the ids a story's events carry.
    const PREFIXES: &[&str] = &[
        "card", "ch", "cs_test", "cus", "evt", "ii", "il", "in", "inpay", "pi", "pm", "price",
        "prod", "re", "si", "sub", "txn",
    ];

    fn stripe_like(id: &str) -> bool {
        PREFIXES.iter().any(|p| {
            id.strip_prefix(p)
                .and_then(|rest| rest.strip_prefix('_'))
                .is_some_and(|rest| {
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
                })
        })
    }

    /// What makes `event` implausible as sent `now`: an id that is a bare word or has no Stripe
    /// prefix; a time (created, …_at, …_start) more than a day from now; an end (…_end) not
    /// within the month ahead.
    fn implausible(event: &Value, now: i64) -> Vec<String> {
        fn walk(value: &Value, path: &str, key: &str, now: i64, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        walk(v, &format!("{path}.{k}"), k, now, found);
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        walk(item, &format!("{path}[]"), key, now, found);
                    }
                }
                Value::String(id) if REFERENCES.contains(&key) && !stripe_like(id) => {
                    found.push(format!("{path} = {id:?}"));
                }
                Value::Number(n) => {
                    let Some(t) = n.as_i64() else { return };
                    let end = key.ends_with("_end") || key == "end";
                    let moment = key == "created"
                        || key.ends_with("_at")
                        || key.ends_with("_start")
                        || matches!(key, "start" | "start_date" | "billing_cycle_anchor");
                    if end && !(now < t && t <= now + 31 * DAY) {
                        found.push(format!("{path} = {t}: not within the month ahead"));
                    } else if moment && (t - now).abs() > DAY {
                        found.push(format!("{path} = {t}: more than a day from now"));
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(event, "", "", now, &mut found);
        found
    }

    #[test]
    fn every_single_example_has_stripe_ids_of_its_run_and_dates_around_now() {
        let cast = Cast::with_suffix("k3pz9qaw");
        for shape in ApiShape::ALL {
            for event_type in EVENT_TYPES {
                let events = single(event_type, shape, &cast, NOW)
                    .unwrap_or_else(|| panic!("an example of {event_type}"));
                let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
                if event_type.starts_with("customer.") && !event_type.contains("subscription") {
                    assert_eq!(types, [*event_type]);
                } else {
                    assert_eq!(
                        types,
                        ["customer.created", event_type],
                        "the customer first"
                    );
                }
                for event in &events {
                    let problems = implausible(event, NOW);
                    assert!(
                        problems.is_empty(),
                        "{event_type} in {shape:?}: {problems:#?}"
                    );
                    let object = &event["data"]["object"];
                    let id = object["id"].as_str().unwrap_or_default();
                    assert!(
                        id.contains("k3pz9qaw"),
                        "{event_type}: the run's own id, not {id}"
                    );
                    if let Some(customer) = object["customer"].as_str() {
                        assert_eq!(customer, cast.customer, "{event_type}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_check_finds_what_the_fixture_examples_get_wrong() {
        let now = fixtures::unix_now();
        let failed = fixtures::event("invoice.payment_failed", ApiShape::Dahlia).expect("fixture");
        let problems = implausible(&failed, now).join("\n");
        assert!(
            problems.contains("subscription_details.subscription = \"subscription\""),
            "{problems}"
        );
        assert!(problems.contains("period_end"), "{problems}");
    }

    #[test]
    fn an_invoice_failure_names_the_subscription_and_whom_to_tell() {
        let cast = Cast::with_suffix("k3pz9qaw");
        for shape in ApiShape::ALL {
            let event = example("invoice.payment_failed", shape, &cast, NOW).expect("example");
            let invoice = &event["data"]["object"];
            let subscription = invoice["subscription"]
                .as_str()
                .or(invoice["parent"]["subscription_details"]["subscription"].as_str());
            assert_eq!(subscription, Some(cast.subscription.as_str()), "{shape:?}");
            assert_eq!(invoice["customer_email"], cast.email.as_str(), "{shape:?}");
        }
    }
}
