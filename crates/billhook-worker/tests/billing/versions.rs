//! An older event never overwrites newer state; same-second ties are applied, and settled
//! through Stripe's API (a local stand-in) when a key is configured; the entitlement grace
//! period; the points ledger rule.

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::scenarios::{ORDER_REFERENCE, SESSION, SUBSCRIPTION, Scenario};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_worker::billing::context::Context;
use billhook_worker::billing::ledger::LedgerRule;
use billhook_worker::billing::settings::BillingSettings;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The subscription of the renewal scenario's `customer.subscription.created`, in `status`,
/// as an event created at `created`.
fn subscription_event(shape: ApiShape, status: &str, created: i64) -> Value {
    let mut event = Scenario::RenewalFailsThenRecovers.events(shape)[1].clone();
    event["id"] = fixtures::event_id().into();
    event["type"] = "customer.subscription.updated".into();
    event["created"] = created.into();
    event["data"]["object"]["status"] = status.into();
    event
}

/// The default context with Stripe's API at `stripe`, key `sk_test_standin`.
fn context_with(stripe: &StripeStandIn) -> Context {
    let settings = BillingSettings {
        stripe_api_key: Some(SecretString::from("sk_test_standin")),
        stripe_api_base: stripe.base.parse().expect("URL"),
        ..BillingSettings::default()
    };
    let mut context = billing::context();
    context.stripe = settings.stripe_api().expect("client");
    context
}

async fn subscription_status(db: &TestDatabase) -> (String, String) {
    sqlx::query_as("SELECT status, last_event_id FROM subscriptions WHERE id = $1")
        .bind(SUBSCRIPTION)
        .fetch_one(&db.pool)
        .await
        .expect("subscription row")
}

#[tokio::test]
async fn an_older_event_is_recorded_as_stale_and_changes_nothing() {
    for shape in ApiShape::ALL {
        let db = TestDatabase::new().await;
        let applier = Applier::new(&db.pool, billing::context());
        let newer = subscription_event(shape, "active", 1_790_000_100);
        let older = subscription_event(shape, "past_due", 1_790_000_050);

        assert_eq!(applier.deliver(&newer).await.expect("newer"), "applied");
        assert_eq!(applier.deliver(&older).await.expect("older"), "stale");

        assert_eq!(
            subscription_status(&db).await,
            ("active".into(), newer["id"].as_str().expect("id").into())
        );
        assert_eq!(db.count("audit_log WHERE entity = 'subscription'").await, 1);
        assert_eq!(
            db.count("app_notifications").await,
            2,
            "{shape:?}: only the newer's"
        );
    }
}

#[tokio::test]
async fn within_one_second_the_object_time_fields_decide() {
    let db = TestDatabase::new().await;
    let applier = Applier::new(&db.pool, billing::context());
    let events = Scenario::RenewalFailsThenRecovers.events(ApiShape::Dahlia);
    // The renewal invoice's failure and its payment, given the same `created`: the payment's
    // status_transitions.paid_at is later, so the failure delivered after it is stale.
    let (mut failed, mut paid) = (events[3].clone(), events[5].clone());
    failed["created"] = paid["created"].clone();
    assert_eq!(applier.deliver(&paid).await.expect("paid"), "applied");
    assert_eq!(applier.deliver(&failed).await.expect("failed"), "stale");
    paid["id"] = fixtures::event_id().into();
    assert_eq!(
        applier.deliver(&paid).await.expect("same again"),
        "applied",
        "an exact tie is applied, not dropped"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM invoices")
        .fetch_one(&db.pool)
        .await
        .expect("invoice");
    assert_eq!(status, "paid");
}

#[tokio::test]
async fn a_same_second_tie_is_applied_without_a_stripe_key() {
    let db = TestDatabase::new().await;
    let applier = Applier::new(&db.pool, billing::context());
    let first = subscription_event(ApiShape::Dahlia, "past_due", 1_790_000_100);
    let second = subscription_event(ApiShape::Dahlia, "unpaid", 1_790_000_100);

    assert_eq!(applier.deliver(&first).await.expect("first"), "applied");
    assert_eq!(applier.deliver(&second).await.expect("second"), "applied");

    assert_eq!(
        subscription_status(&db).await,
        ("unpaid".into(), second["id"].as_str().expect("id").into())
    );
}

#[tokio::test]
async fn with_a_stripe_key_a_tie_is_settled_by_the_object_from_stripes_api() {
    for shape in ApiShape::ALL {
        let db = TestDatabase::new().await;
        let stripe = StripeStandIn::start().await;
        let applier = Applier::new(&db.pool, context_with(&stripe));
        let first = subscription_event(shape, "past_due", 1_790_000_100);
        let second = subscription_event(shape, "unpaid", 1_790_000_100);
        let mut current = first["data"]["object"].clone();
        current["status"] = "active".into();
        stripe.put(&format!("/v1/subscriptions/{SUBSCRIPTION}"), current);

        assert_eq!(applier.deliver(&first).await.expect("first"), "applied");
        assert!(stripe.requests().is_empty(), "no tie, no call");
        assert_eq!(applier.deliver(&second).await.expect("second"), "applied");

        assert_eq!(subscription_status(&db).await.0, "active", "{shape:?}");
        let requests = stripe.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "GET");
        assert_eq!(
            requests[0].path,
            format!("/v1/subscriptions/{SUBSCRIPTION}")
        );
        assert_eq!(
            requests[0].authorization.as_deref(),
            Some("Bearer sk_test_standin")
        );
        assert_eq!(
            requests[0].stripe_version.as_deref(),
            Some(shape.api_version()),
            "the object is fetched in the event's shape"
        );
        stripe.stop().await;
    }
}

#[tokio::test]
async fn a_tie_stripe_cannot_settle_is_applied_as_delivered() {
    let db = TestDatabase::new().await;
    // The stand-in knows no such subscription: Stripe answers 404.
    let stripe = StripeStandIn::start().await;
    let applier = Applier::new(&db.pool, context_with(&stripe));
    let first = subscription_event(ApiShape::Dahlia, "past_due", 1_790_000_100);
    let second = subscription_event(ApiShape::Dahlia, "unpaid", 1_790_000_100);

    assert_eq!(applier.deliver(&first).await.expect("first"), "applied");
    assert_eq!(applier.deliver(&second).await.expect("second"), "applied");

    assert_eq!(stripe.requests().len(), 1, "Stripe was asked");
    assert_eq!(
        subscription_status(&db).await,
        ("unpaid".into(), second["id"].as_str().expect("id").into())
    );
    assert_eq!(db.count("dead_letters").await, 0);
    stripe.stop().await;
}

#[tokio::test]
async fn a_failing_stripe_api_makes_a_tie_retryable_and_changes_nothing() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let applier = Applier::new(&db.pool, context_with(&stripe));
    let first = subscription_event(ApiShape::Dahlia, "past_due", 1_790_000_100);
    let second = subscription_event(ApiShape::Dahlia, "unpaid", 1_790_000_100);
    assert_eq!(applier.deliver(&first).await.expect("first"), "applied");
    stripe.fail_next(&[503]);

    let error = applier.deliver(&second).await.expect_err("Stripe is down");

    assert!(error.is_retryable(), "{error}");
    assert!(!format!("{error}").contains("sk_test"), "{error}");
    assert_eq!(subscription_status(&db).await.0, "past_due");
    assert_eq!(
        db.count("webhook_events WHERE status = 'received'").await,
        1
    );
    stripe.stop().await;
}

#[tokio::test]
async fn past_due_counts_in_the_entitlements_only_within_the_grace_period() {
    let db = TestDatabase::new().await;
    let applier = Applier::new(&db.pool, billing::context());
    let now = fixtures::unix_now();
    let created = subscription_event(ApiShape::Dahlia, "active", now - 10);
    let past_due = subscription_event(ApiShape::Dahlia, "past_due", now - 5);
    applier.deliver(&created).await.expect("created");
    applier.deliver(&past_due).await.expect("past_due");

    let entitled = || db.count("entitlements WHERE status = 'past_due'");
    assert_eq!(
        entitled().await,
        1,
        "past_due for seconds: within the 3-day grace"
    );
    sqlx::query("UPDATE billing_settings SET past_due_grace = interval '1 second'")
        .execute(&db.pool)
        .await
        .expect("shorten the grace");
    assert_eq!(entitled().await, 0, "past_due beyond the grace");
}

#[tokio::test]
async fn the_points_rule_credits_whole_points_per_currency_unit() {
    let db = TestDatabase::new().await;
    let mut context = billing::context();
    context.ledger = LedgerRule::PointsPerUnit(10);
    let applier = Applier::new(&db.pool, context);
    billing::create_order(&db.pool, ORDER_REFERENCE, SESSION).await;
    for event in Scenario::PartialRefund.events(ApiShape::Acacia) {
        applier.deliver(&event).await.expect("applies");
    }
    // $50.00 paid → 500 points; $20.00 refunded → 200 points back.
    assert_eq!(
        billing::rows(
            &db.pool,
            "SELECT kind, amount, unit FROM ledger_entries ORDER BY id"
        )
        .await,
        json!([{ "kind": "purchase_credit", "amount": 500, "unit": "points" },
               { "kind": "refund_debit", "amount": -200, "unit": "points" }])
    );
}
