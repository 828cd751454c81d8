//! A failed payment is mailed once. From API version 2025-03-31 a PaymentIntent does not say
//! whether it pays an invoice, so its failure email waits (BILLHOOK_EMAIL_PAYMENT_FAILED_HOLD);
//! when the invoice's failure arrives meanwhile, the email is withdrawn and the invoice's dunning
//! run tells the customer instead.

use billhook_core::jobs::Job as _;
use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::scenarios::{CUSTOMER, RENEWAL_INVOICE, Scenario};
use billhook_worker::queue::jobs::SendEmail;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A failed PaymentIntent `id` of the test customer, in `shape`.
fn failed_payment(shape: ApiShape, id: &str) -> Value {
    let mut event = fixtures::event("payment_intent.payment_failed", shape).expect("fixture");
    let object = &mut event["data"]["object"];
    object["id"] = id.into();
    object["customer"] = CUSTOMER.into();
    object["currency"] = "usd".into();
    if shape == ApiShape::Acacia {
        // The older shape names the invoice a payment is for; none for a one-time payment.
        object["invoice"] = Value::Null;
    }
    event
}

/// The payment_failed email's status, and how many seconds from now its job is due.
async fn payment_failed_email(pool: &PgPool) -> (String, f64) {
    sqlx::query_as(
        "SELECT e.status, extract(epoch FROM j.run_at - now())::float8
           FROM emails e JOIN apalis.jobs j ON j.idempotency_key = e.id AND j.job_type = $1
          WHERE e.template = 'payment_failed'",
    )
    .bind(SendEmail::QUEUE)
    .fetch_one(pool)
    .await
    .expect("one payment_failed email with its job")
}

#[tokio::test]
async fn a_renewals_failure_that_arrives_before_its_invoice_is_mailed_by_dunning_only() {
    let db = TestDatabase::new().await;
    let applier = Applier::new(&db.pool, billing::context());
    let story = Scenario::RenewalNeverRecovers.events(ApiShape::Dahlia);
    for event in &story[..3] {
        applier.deliver(event).await.expect("applied");
    }
    let renewal_payment = format!("pi_{}", &RENEWAL_INVOICE[3..]);
    let failure = failed_payment(ApiShape::Dahlia, &renewal_payment);
    assert!(failure["data"]["object"].get("invoice").is_none());

    assert_eq!(applier.deliver(&failure).await.expect("applied"), "applied");
    let (status, due_in) = payment_failed_email(&db.pool).await;
    assert_eq!(status, "pending");
    assert!(due_in > 60.0, "held, due in {due_in} s");

    // The invoice's failure (story[3]) names the PaymentIntent and opens the dunning run.
    assert_eq!(
        applier.deliver(&story[3]).await.expect("applied"),
        "applied"
    );
    let (status, _) = payment_failed_email(&db.pool).await;
    assert_eq!(status, "skipped", "withdrawn: dunning tells the customer");
    assert_eq!(db.count("dunning_runs").await, 1);
    assert_eq!(
        billing::rows(
            &db.pool,
            "SELECT entity, action FROM audit_log WHERE entity = 'email'"
        )
        .await,
        json!([{ "entity": "email", "action": "withdrawn" }])
    );
}

#[tokio::test]
async fn a_failed_one_time_payment_is_still_mailed_held_only_when_it_could_be_an_invoices() {
    for (shape, held) in [(ApiShape::Acacia, false), (ApiShape::Dahlia, true)] {
        let db = TestDatabase::new().await;
        let applier = Applier::new(&db.pool, billing::context());
        applier
            .deliver(&Scenario::RenewalNeverRecovers.events(shape)[0])
            .await
            .expect("the customer");

        let failure = failed_payment(shape, "pi_OneTime0001");
        assert_eq!(applier.deliver(&failure).await.expect("applied"), "applied");

        let (status, due_in) = payment_failed_email(&db.pool).await;
        assert_eq!(status, "pending", "{shape:?}");
        assert_eq!(due_in > 60.0, held, "{shape:?}: due in {due_in} s");
    }
}
