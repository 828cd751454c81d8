//! Delivery order never matters: for every scenario, in both API shapes, many random delivery
//! orders with random duplicates reach the same final state as delivery in the order things
//! happened. A property test: proptest draws the orders and, on a failure, shrinks it to a
//! smallest order that still differs.

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::ApiShape;
use billhook_testkit::scenarios::{ORDER_REFERENCE, SESSION, Scenario};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

/// Random orders drawn per scenario and shape.
const CASES: u32 = 24;

async fn deliver_all(applier: &Applier, scenario: Scenario, deliveries: &[Value]) {
    billing::reset(&applier.pool).await;
    if scenario.app_creates_order() {
        billing::create_order(&applier.pool, ORDER_REFERENCE, SESSION).await;
    }
    for event in deliveries {
        applier
            .deliver(event)
            .await
            .unwrap_or_else(|e| panic!("{} applies: {e}", event["type"]));
    }
}

/// A delivery order: a permutation of the events, with some delivered twice (a redelivery
/// reaches the worker again, where it must change nothing).
fn deliveries(events: Vec<Value>) -> impl Strategy<Value = Vec<Value>> {
    let n = events.len();
    (
        Just(events).prop_shuffle(),
        proptest::collection::vec((0..n, 0..=n), 0..=n),
    )
        .prop_map(|(mut order, duplicates)| {
            for (which, at) in duplicates {
                let again = order[which].clone();
                order.insert(at.min(order.len()), again);
            }
            order
        })
}

fn check(scenario: Scenario, shape: ApiShape) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = runtime.block_on(TestDatabase::new());
    let applier = Applier::new(&db.pool, billing::context());
    let events = scenario.events(shape);
    let expected = runtime.block_on(async {
        deliver_all(&applier, scenario, &events).await;
        billing::snapshot(&db.pool).await
    });

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&deliveries(events), |order| {
        let actual = runtime.block_on(async {
            deliver_all(&applier, scenario, &order).await;
            billing::snapshot(&db.pool).await
        });
        if actual == expected {
            return Ok(());
        }
        let types: Vec<_> = order.iter().map(|e| e["type"].to_string()).collect();
        Err(TestCaseError::fail(format!(
            "delivered as {types:?}:\n{}",
            diff(&expected, &actual)
        )))
    });
    if let Err(e) = result {
        panic!("{scenario:?} in {shape:?}: {e}");
    }
}

/// The tables whose rows differ, for a readable failure.
fn diff(expected: &Value, actual: &Value) -> String {
    let (Some(expected), Some(actual)) = (expected.as_object(), actual.as_object()) else {
        return format!("expected {expected}\nactual {actual}");
    };
    expected
        .iter()
        .filter(|(table, rows)| actual.get(*table) != Some(*rows))
        .map(|(table, rows)| {
            format!(
                "{table}:\n  in order: {rows}\n  this order: {}",
                actual.get(table).unwrap_or(&Value::Null)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! order_independence {
    ($($name:ident: $scenario:expr,)*) => {$(
        #[test]
        fn $name() {
            for shape in ApiShape::ALL {
                check($scenario, shape);
            }
        }
    )*};
}

order_independence! {
    checkout_paid_then_refunded: Scenario::CheckoutPaidThenRefunded,
    partial_refund: Scenario::PartialRefund,
    subscription_signup: Scenario::SubscriptionSignup,
    renewal_fails_then_recovers: Scenario::RenewalFailsThenRecovers,
    renewal_never_recovers: Scenario::RenewalNeverRecovers,
    trial_pauses_and_resumes: Scenario::TrialPausesAndResumes,
    order_never_created: Scenario::OrderNeverCreated,
}
