//! The order and customer transitions the scenarios do not reach: a failed payment, an expired
//! session, a payment for an order nobody knows, and a customer's deletion.

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::scenarios::{ORDER_REFERENCE, PAYMENT_INTENT, SESSION, Scenario};
use serde_json::{Value, json};

/// The scenario's `payment_intent.succeeded`, turned into a failed attempt.
fn payment_failed(shape: ApiShape) -> Value {
    let mut event = Scenario::CheckoutPaidThenRefunded.events(shape)[1].clone();
    event["id"] = fixtures::event_id().into();
    event["type"] = "payment_intent.payment_failed".into();
    let object = &mut event["data"]["object"];
    object["status"] = "requires_payment_method".into();
    object["amount_received"] = 0.into();
    object["last_payment_error"] = json!({ "type": "card_error", "code": "card_declined",
        "decline_code": "insufficient_funds", "message": "Your card has insufficient funds." });
    event
}

async fn order(db: &TestDatabase) -> Value {
    billing::rows(
        &db.pool,
        "SELECT status, failure_reason, paid_at IS NOT NULL AS paid FROM orders",
    )
    .await
}

async fn notices(db: &TestDatabase) -> Value {
    billing::rows(
        &db.pool,
        "SELECT type, coalesce(body->'data'->>'reference', body->'data'->'order'->>'reference') AS reference
           FROM app_notifications ORDER BY created_at, type",
    )
    .await
}

#[tokio::test]
async fn a_failed_payment_fails_the_order_and_a_later_success_pays_it() {
    for shape in ApiShape::ALL {
        let db = TestDatabase::new().await;
        billing::create_order(&db.pool, ORDER_REFERENCE, PAYMENT_INTENT).await;
        let applier = Applier::new(&db.pool, billing::context());
        let mut failed = payment_failed(shape);
        failed["created"] = 1_790_000_000.into();
        applier.deliver(&failed).await.expect("failure applies");

        assert_eq!(
            order(&db).await,
            json!([{ "status": "failed", "failure_reason": "Your card has insufficient funds.", "paid": false }])
        );
        assert_eq!(
            billing::rows(&db.pool, "SELECT type FROM app_notifications").await,
            json!([{ "type": "order.payment_failed" }])
        );
        assert_eq!(
            billing::rows(&db.pool, "SELECT template FROM emails").await,
            json!([{ "template": "payment_failed" }])
        );

        let mut succeeded = Scenario::CheckoutPaidThenRefunded.events(shape)[1].clone();
        succeeded["created"] = 1_790_000_060.into();
        applier.deliver(&succeeded).await.expect("success applies");
        assert_eq!(order(&db).await[0]["status"], "paid", "{shape:?}");
        assert_eq!(
            db.count("ledger_entries WHERE kind = 'purchase_credit' AND amount = 5000")
                .await,
            1
        );
    }
}

#[tokio::test]
async fn an_expired_session_cancels_a_pending_order() {
    let db = TestDatabase::new().await;
    billing::create_order(&db.pool, ORDER_REFERENCE, SESSION).await;
    let applier = Applier::new(&db.pool, billing::context());
    let mut expired = Scenario::CheckoutPaidThenRefunded.events(ApiShape::Acacia)[2].clone();
    expired["type"] = "checkout.session.expired".into();
    expired["data"]["object"]["status"] = "expired".into();
    expired["data"]["object"]["payment_status"] = "unpaid".into();

    assert_eq!(applier.deliver(&expired).await.expect("applies"), "applied");

    assert_eq!(
        order(&db).await,
        json!([{ "status": "cancelled", "failure_reason": null, "paid": false }])
    );
    assert_eq!(
        notices(&db).await,
        json!([{ "type": "order.cancelled", "reference": ORDER_REFERENCE }])
    );
    assert_eq!(db.count("ledger_entries").await, 0);
}

#[tokio::test]
async fn an_expired_session_without_an_order_creates_none_and_is_recorded() {
    let db = TestDatabase::new().await;
    let applier = Applier::new(&db.pool, billing::context());
    let mut expired = Scenario::OrderNeverCreated.events(ApiShape::Dahlia)[0].clone();
    expired["type"] = "checkout.session.expired".into();
    expired["data"]["object"]["status"] = "expired".into();

    assert_eq!(applier.deliver(&expired).await.expect("applies"), "applied");
    assert_eq!(db.count("orders").await, 0);
    assert_eq!(
        db.count("audit_log WHERE entity = 'order' AND action = 'not_found'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_payment_for_an_unknown_order_is_recorded_not_retried() {
    let db = TestDatabase::new().await;
    let applier = Applier::new(&db.pool, billing::context());
    let succeeded = Scenario::CheckoutPaidThenRefunded.events(ApiShape::Dahlia)[1].clone();

    assert_eq!(
        applier.deliver(&succeeded).await.expect("applies"),
        "applied"
    );

    assert_eq!(db.count("orders").await, 0);
    assert_eq!(
        billing::rows(
            &db.pool,
            "SELECT entity_id, action FROM audit_log WHERE entity = 'order'"
        )
        .await,
        json!([{ "entity_id": PAYMENT_INTENT, "action": "not_found" }])
    );
    assert_eq!(db.count("job_failures").await, 0);
    assert_eq!(db.count("payments WHERE status = 'succeeded'").await, 1);
}

#[tokio::test]
async fn a_deleted_customer_is_marked_and_keeps_its_history() {
    for shape in ApiShape::ALL {
        let db = TestDatabase::new().await;
        let applier = Applier::new(&db.pool, billing::context());
        let mut created = fixtures::event("customer.created", shape).expect("fixture");
        created["created"] = 1_790_000_000.into();
        let mut deleted = fixtures::event("customer.deleted", shape).expect("fixture");
        deleted["created"] = 1_790_000_100.into();
        let mut late_update = fixtures::event("customer.updated", shape).expect("fixture");
        late_update["created"] = 1_790_000_050.into();

        for event in [&created, &deleted, &late_update] {
            applier.deliver(event).await.expect("applies");
        }

        assert_eq!(
            billing::rows(
                &db.pool,
                "SELECT deleted, email, object->>'email' AS kept FROM customers"
            )
            .await,
            json!([{ "deleted": true, "email": "buyer@example.com", "kept": "buyer@example.com" }]),
            "{shape:?}: marked, not erased; the last full object stays"
        );
        assert_eq!(
            billing::rows(&db.pool, "SELECT action FROM audit_log ORDER BY id").await,
            json!([{ "action": "upserted" }, { "action": "deleted" }])
        );
        assert_eq!(db.count("webhook_events WHERE status = 'stale'").await, 1);
    }
}
