//! The trigger's stories (`scripts/trigger.sh --story NAME`) keep their promises: each story's
//! events, applied in order through the worker's own code on a database of its own, with the
//! dunning steps a running worker takes between chapters, end in the state the story announces,
//! every email addressed to the story's customer.

use std::ops::Range;

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::objects::Cast;
use billhook_testkit::stories::{Story, Then};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_testkit::trigger;
use billhook_worker::billing::settings::BillingSettings;
use billhook_worker::dunning::job::DunningStepJob;
use billhook_worker::queue::jobs::DunningStep;
use billhook_worker::queue::{JobError, JobKind as _};
use billhook_worker::stripe::StripeApi;
use secrecy::SecretString;
use serde_json::{Value, json};

struct Told {
    db: TestDatabase,
    cast: Cast,
}

impl Told {
    async fn rows(&self, sql: &str) -> Value {
        billing::rows(&self.db.pool, sql).await
    }

    /// The story's emails: template, recipient and status, in the order they were decided.
    async fn emails(&self) -> Value {
        self.rows("SELECT template, recipient, status FROM emails ORDER BY created_at, id")
            .await
    }

    fn emails_to_the_customer(&self, templates: &[&str]) -> Value {
        templates
            .iter()
            .map(|t| json!({ "template": t, "recipient": self.cast.email, "status": "pending" }))
            .collect()
    }
}

/// Tells `story` in `shape` as the trigger does against a running worker: the application's
/// order first, then each chapter's events, each applied, and between chapters the dunning
/// steps the worker would have run by then.
async fn tell(story: Story, shape: ApiShape) -> Told {
    let db = TestDatabase::new().await;
    let cast = Cast::with_suffix("story0001");
    if story.app_creates_order() {
        trigger::create_order(&db.pool, &cast)
            .await
            .expect("the application's order");
    }
    let applier = Applier::new(&db.pool, billing::context());
    for chapter in story.chapters(shape, &cast, fixtures::unix_now()) {
        for event in &chapter.events {
            let status = applier
                .deliver(event)
                .await
                .unwrap_or_else(|e| panic!("{} applies: {e}", event["type"]));
            assert_eq!(
                status, "applied",
                "{} in {story:?}, {shape:?}",
                event["type"]
            );
        }
        match chapter.then {
            Then::Continue => {}
            Then::FirstDunningStep => dunning_steps(&db, 0..1, None).await,
            Then::DunningRunEnds => run_dunning_to_its_cancellation(&db, &cast).await,
        }
    }
    Told { db, cast }
}

fn dunning_job(db: &TestDatabase, stripe: Option<StripeApi>) -> DunningStepJob {
    let context = billing::context();
    DunningStepJob {
        pool: db.pool.clone(),
        dunning: context.dunning,
        mailer: context.mailer,
        stripe,
    }
}

async fn the_run(db: &TestDatabase) -> String {
    sqlx::query_scalar("SELECT id FROM dunning_runs")
        .fetch_one(&db.pool)
        .await
        .expect("one dunning run")
}

/// Runs steps `steps` of the story's dunning run, as the worker does when each is due.
async fn dunning_steps(db: &TestDatabase, steps: Range<u32>, stripe: Option<StripeApi>) {
    let run_id = the_run(db).await;
    let job = dunning_job(db, stripe);
    for step in steps {
        job.run(DunningStep::V1 {
            run_id: run_id.clone(),
            step,
        })
        .await
        .unwrap_or_else(|e| panic!("dunning step {step}: {e:#}"));
    }
}

/// The three emails, then the cancellation: without a Stripe key (as in dev) that step fails
/// for good and says why; with Stripe's API knowing the subscription it cancels.
async fn run_dunning_to_its_cancellation(db: &TestDatabase, cast: &Cast) {
    dunning_steps(db, 0..3, None).await;
    let cancel = DunningStep::V1 {
        run_id: the_run(db).await,
        step: 3,
    };
    match dunning_job(db, None).run(cancel.clone()).await {
        Err(JobError::Permanent(e)) => {
            assert!(
                format!("{e:#}").contains("BILLHOOK_STRIPE_API_KEY"),
                "{e:#}"
            )
        }
        other => panic!("without a key the cancellation is dead-lettered, not {other:?}"),
    }
    let stripe = StripeStandIn::start().await;
    for (table, id) in [
        ("invoices", &cast.renewal_invoice),
        ("subscriptions", &cast.subscription),
    ] {
        let object: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT object FROM {table} WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("the mirrored object");
        stripe.put(&format!("/v1/{table}/{id}"), object);
    }
    let api = BillingSettings {
        stripe_api_key: Some(SecretString::from("sk_test_story")),
        stripe_api_base: stripe.base.parse().expect("URL"),
        ..BillingSettings::default()
    }
    .stripe_api()
    .expect("client");
    dunning_job(db, api)
        .run(cancel)
        .await
        .expect("the cancellation");
    stripe.stop().await;
}

#[tokio::test]
async fn a_one_time_purchase_pays_the_applications_order_and_mails_its_customer() {
    for shape in ApiShape::ALL {
        let told = tell(Story::OneTimePurchase, shape).await;
        let cast = &told.cast;
        assert_eq!(
            told.rows("SELECT reference, checkout_ref, status, amount, created_by FROM orders")
                .await,
            json!([{ "reference": cast.order_reference, "checkout_ref": cast.session, "status": "paid",
                     "amount": 5000, "created_by": "application" }]),
            "{shape:?}"
        );
        assert_eq!(
            told.emails().await,
            told.emails_to_the_customer(&["order_confirmation", "payment_receipt"]),
            "{shape:?}"
        );
        assert_eq!(
            told.rows("SELECT customer_id, kind, amount FROM ledger_entries")
                .await,
            json!([{ "customer_id": cast.customer, "kind": "purchase_credit", "amount": 5000 }])
        );
    }
}

#[tokio::test]
async fn a_refund_refunds_the_order_and_debits_the_ledger() {
    for shape in ApiShape::ALL {
        let told = tell(Story::Refund, shape).await;
        assert_eq!(
            told.rows("SELECT status, amount_refunded FROM orders")
                .await,
            json!([{ "status": "refunded", "amount_refunded": 5000 }]),
            "{shape:?}"
        );
        assert_eq!(
            told.rows("SELECT kind, amount FROM ledger_entries ORDER BY id")
                .await,
            json!([{ "kind": "purchase_credit", "amount": 5000 },
                   { "kind": "refund_debit", "amount": -5000 }])
        );
        assert_eq!(
            told.emails().await,
            told.emails_to_the_customer(&[
                "order_confirmation",
                "payment_receipt",
                "refund_confirmation"
            ]),
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn a_subscription_signup_is_active_for_a_month_from_now() {
    for shape in ApiShape::ALL {
        let told = tell(Story::SubscriptionSignup, shape).await;
        assert_eq!(
            told.rows(
                "SELECT status, current_period_end BETWEEN now() + interval '29 days' AND now() + interval '31 days' AS a_month_ahead
                   FROM subscriptions"
            )
            .await,
            json!([{ "status": "active", "a_month_ahead": true }]),
            "{shape:?}"
        );
        assert_eq!(
            told.rows("SELECT status FROM entitlements").await,
            json!([{ "status": "active" }])
        );
        assert_eq!(
            told.rows("SELECT status, created_by FROM orders").await,
            json!([{ "status": "paid", "created_by": "checkout" }])
        );
        assert_eq!(
            told.emails().await,
            told.emails_to_the_customer(&["payment_receipt", "order_confirmation"]),
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn a_renewal_that_fails_then_recovers_mails_the_failure_then_the_receipt() {
    for shape in ApiShape::ALL {
        let told = tell(Story::RenewalFailsThenRecovers, shape).await;
        let cast = &told.cast;
        assert_eq!(
            told.rows("SELECT invoice_id, state, steps_done FROM dunning_runs")
                .await,
            json!([{ "invoice_id": cast.renewal_invoice, "state": "recovered", "steps_done": 1 }]),
            "{shape:?}"
        );
        assert_eq!(
            told.rows("SELECT id, status FROM invoices ORDER BY id")
                .await,
            json!([{ "id": cast.first_invoice, "status": "paid" },
                   { "id": cast.renewal_invoice, "status": "paid" }])
        );
        assert_eq!(
            told.rows("SELECT status FROM subscriptions").await,
            json!([{ "status": "active" }])
        );
        assert_eq!(
            told.emails().await,
            told.emails_to_the_customer(&["payment_receipt", "payment_failed", "payment_receipt"]),
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn a_renewal_that_fails_for_good_is_dunned_to_its_cancellation() {
    for shape in ApiShape::ALL {
        let told = tell(Story::RenewalFailsToCancellation, shape).await;
        let cast = &told.cast;
        assert_eq!(
            told.rows("SELECT invoice_id, subscription_id, state, steps_done FROM dunning_runs")
                .await,
            json!([{ "invoice_id": cast.renewal_invoice, "subscription_id": cast.subscription,
                     "state": "canceled", "steps_done": 4 }]),
            "{shape:?}"
        );
        assert_eq!(
            told.rows("SELECT status, ended_at IS NOT NULL AS ended FROM subscriptions")
                .await,
            json!([{ "status": "canceled", "ended": true }])
        );
        assert_eq!(told.rows("SELECT * FROM entitlements").await, json!([]));
        // Stripe's customer.subscription.deleted after the cancellation mails no one again.
        assert_eq!(
            told.emails().await,
            told.emails_to_the_customer(&[
                "payment_receipt",
                "payment_failed",
                "dunning_reminder",
                "final_warning",
                "subscription_cancelled"
            ]),
            "{shape:?}"
        );
    }
}

#[tokio::test]
async fn a_trial_ending_in_three_days_mails_its_customer() {
    for shape in ApiShape::ALL {
        let told = tell(Story::TrialEnding, shape).await;
        assert_eq!(
            told.rows(
                "SELECT status, trial_end BETWEEN now() + interval '71 hours' AND now() + interval '73 hours' AS in_three_days
                   FROM subscriptions"
            )
            .await,
            json!([{ "status": "trialing", "in_three_days": true }]),
            "{shape:?}"
        );
        assert_eq!(
            told.emails().await,
            told.emails_to_the_customer(&["trial_ending"]),
            "{shape:?}"
        );
        assert_eq!(
            told.rows("SELECT data->>'has_payment_method' AS card FROM emails")
                .await,
            json!([{ "card": "false" }])
        );
    }
}
