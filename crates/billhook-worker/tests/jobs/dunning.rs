//! Dunning end to end with a schedule in seconds: the receiver takes the events, a running
//! worker applies them and runs the steps, a real SMTP server process gets the emails and a
//! local HTTP server stands in for Stripe's API.

use std::time::Duration;

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::scenarios::{RENEWAL_INVOICE, SUBSCRIPTION, Scenario};
use billhook_testkit::smtp::SmtpSink;
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_testkit::worker::{
    run_due_jobs, run_jobs_due_within, settings_with_smtp, wait_for_count,
};
use billhook_testkit::{TestReceiver, TestWorker};
use billhook_worker::daemon::settings::RunSettings;
use secrecy::SecretString;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);
/// Longer than the whole schedule below (steps at 0, 2, 4 and 6 s): waiting for the jobs due
/// within it runs a run to its end.
const SCHEDULE: Duration = Duration::from_secs(10);
const FAILED: &str = "Your payment of 20.00 USD did not go through";
const REMINDER: &str = "Reminder: 20.00 USD is still due";
const CANCELLED: &str = "Your subscription has been cancelled";

struct Setup {
    app: TestReceiver,
    sink: SmtpSink,
    stripe: StripeStandIn,
    events: Vec<Value>,
}

impl Setup {
    async fn start() -> Self {
        let app = TestReceiver::spawn().await;
        let sink = SmtpSink::start().await;
        let stripe = StripeStandIn::start().await;
        // The never-recovering renewal, its first failure now (the run's schedule counts from
        // it): customer, subscription, first invoice paid, the renewal's failure, past_due, a
        // second failure, deletion.
        let mut events = Scenario::RenewalNeverRecovers.events(ApiShape::Dahlia);
        let now = fixtures::unix_now();
        for (n, event) in events.iter_mut().enumerate() {
            event["created"] = (now - 3 + n as i64).into();
        }
        let mut invoice = events[3]["data"]["object"].clone();
        invoice["hosted_invoice_url"] = "https://invoice.stripe.com/i/test".into();
        stripe.put(&format!("/v1/invoices/{RENEWAL_INVOICE}"), invoice);
        stripe.put(
            &format!("/v1/subscriptions/{SUBSCRIPTION}"),
            events[4]["data"]["object"].clone(),
        );
        Self {
            app,
            sink,
            stripe,
            events,
        }
    }

    fn settings(&self) -> RunSettings {
        let mut settings = settings_with_smtp(self.sink.port);
        settings.dunning.schedule = "0s,2s,4s,6s".parse().expect("schedule");
        settings.billing.stripe_api_key = Some(SecretString::from("sk_test_dunning"));
        settings.billing.stripe_api_base = self.stripe.base.parse().expect("URL");
        settings
    }

    async fn deliver(&self, n: usize) {
        assert_eq!(self.app.deliver(&self.events[n]).await.status(), 200);
    }

    /// Delivers the story up to the renewal's first failure (events 0..=3).
    async fn fail_renewal(&self) {
        for n in 0..=3 {
            self.deliver(n).await;
        }
    }

    /// Polls for one step of a run while the next, due seconds later, has not run yet: a drain
    /// would run that one too.
    async fn wait_for(&self, sql: &str, expected: i64) {
        wait_for_count(&self.app.db.pool, sql, expected, WAIT).await;
    }

    /// Runs every step left, each once it is due, and all the work they set off.
    async fn run_the_schedule(&self) {
        run_jobs_due_within(&self.app.db.pool, SCHEDULE, WAIT).await;
    }

    async fn count(&self, from: &str) -> i64 {
        self.app.db.count(from).await
    }

    fn subjects(&self) -> Vec<String> {
        self.sink
            .messages()
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn deletes(&self) -> Vec<Option<String>> {
        self.stripe
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.idempotency_key)
            .collect()
    }

    async fn run(&self) -> (String, i32, Option<String>) {
        sqlx::query_as("SELECT state, steps_done, stop_reason FROM dunning_runs")
            .fetch_one(&self.app.db.pool)
            .await
            .expect("one dunning run")
    }
}

/// DunningStep jobs still to run.
const STEPS_UNSETTLED: &str = "apalis.jobs
    WHERE job_type = 'billhook.dunning_step' AND status NOT IN ('Done', 'Failed', 'Killed')";

#[tokio::test]
async fn an_unrecovered_run_emails_three_times_then_cancels_through_stripe_once() {
    let s = Setup::start().await;
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;
    s.deliver(4).await; // past_due
    s.deliver(5).await; // the invoice fails again: the same run continues

    s.run_the_schedule().await;
    assert_eq!(s.count("dunning_runs WHERE state = 'canceled'").await, 1);
    assert_eq!(s.count("emails WHERE status = 'sent'").await, 5);
    s.sink.wait_for(5, WAIT).await;
    // Stripe's own webhook about the cancellation: no second cancellation email.
    s.deliver(6).await;
    run_due_jobs(&s.app.db.pool).await;
    assert_eq!(s.count("webhook_events WHERE status <> 'applied'").await, 0);
    worker.stop().await.expect("clean stop");

    let final_warning = format!(
        "Final notice: your subscription will be cancelled on {}",
        chrono::DateTime::from_timestamp(s.events[3]["created"].as_i64().expect("t") + 6, 0)
            .expect("time")
            .format("%Y-%m-%d")
    );
    // The first invoice's receipt goes out beside the run's emails; the run's are in order.
    let subjects = s.subjects();
    let (receipts, run): (Vec<_>, Vec<_>) = subjects.iter().partition(|t| t.starts_with("Receipt"));
    assert_eq!(receipts.len(), 1, "{subjects:?}");
    assert_eq!(
        run,
        [FAILED, REMINDER, final_warning.as_str(), CANCELLED],
        "{subjects:?}"
    );
    let run_id: String = sqlx::query_scalar("SELECT id FROM dunning_runs")
        .fetch_one(&s.app.db.pool)
        .await
        .expect("run");
    assert_eq!(
        s.deletes(),
        vec![Some(format!("billhook-dunning-{run_id}"))]
    );
    assert_eq!(s.run().await, ("canceled".into(), 4, None));
    assert_eq!(s.app.db.count("dunning_runs").await, 1);
    let status: String = sqlx::query_scalar("SELECT status FROM subscriptions")
        .fetch_one(&s.app.db.pool)
        .await
        .expect("subscription");
    assert_eq!(status, "canceled");
    assert_eq!(s.app.db.count("dead_letters").await, 0);
}

#[tokio::test]
async fn a_run_recovered_after_the_reminder_stops() {
    let s = Setup::start().await;
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;
    s.wait_for("SELECT count(*) FROM dunning_runs WHERE steps_done = 2", 1)
        .await;

    let mut paid = Scenario::RenewalFailsThenRecovers.events(ApiShape::Dahlia)[5].clone();
    paid["created"] = fixtures::unix_now().into();
    assert_eq!(s.app.deliver(&paid).await.status(), 200);
    s.run_the_schedule().await;
    assert_eq!(s.count("dunning_runs WHERE state = 'recovered'").await, 1);
    assert_eq!(
        s.count("apalis.jobs WHERE job_type = 'billhook.dunning_step'")
            .await,
        3
    );
    assert_eq!(s.count(STEPS_UNSETTLED).await, 0);
    assert_eq!(s.count("emails WHERE status = 'pending'").await, 0);
    worker.stop().await.expect("clean stop");

    let subjects = s.subjects();
    let (receipts, run): (Vec<_>, Vec<_>) = subjects.iter().partition(|t| t.starts_with("Receipt"));
    assert_eq!(
        receipts.len(),
        2,
        "the first invoice's and the renewal's: {subjects:?}"
    );
    assert_eq!(run, [FAILED, REMINDER], "{subjects:?}");
    assert!(s.deletes().is_empty());
    assert_eq!(
        s.run().await,
        ("recovered".into(), 2, Some("invoice paid".into()))
    );
}

#[tokio::test]
async fn a_worker_restarted_in_the_middle_finishes_the_run() {
    let s = Setup::start().await;
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;
    s.wait_for("SELECT count(*) FROM dunning_runs WHERE steps_done = 1", 1)
        .await;
    worker.stop().await.expect("clean stop");
    // Steps come due while no worker runs; they wait in the queue.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.run_the_schedule().await;
    assert_eq!(s.count("dunning_runs WHERE state = 'canceled'").await, 1);
    assert_eq!(s.count("emails WHERE status = 'sent'").await, 5);
    worker.stop().await.expect("clean stop");

    assert_eq!(s.subjects().len(), 5, "{:?}", s.subjects());
    assert_eq!(s.deletes().len(), 1);
    assert_eq!(s.run().await, ("canceled".into(), 4, None));
}

#[tokio::test]
async fn a_step_that_finds_the_invoice_paid_stops_the_run() {
    let s = Setup::start().await;
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;
    s.wait_for("SELECT count(*) FROM dunning_runs WHERE steps_done = 1", 1)
        .await;
    // Paid in Stripe; the invoice.paid webhook has not arrived.
    let path = format!("/v1/invoices/{RENEWAL_INVOICE}");
    let mut invoice = s.stripe.get(&path).expect("invoice");
    invoice["status"] = "paid".into();
    s.stripe.put(&path, invoice);

    s.run_the_schedule().await;
    assert_eq!(s.count("dunning_runs WHERE state = 'recovered'").await, 1);
    assert_eq!(s.count(STEPS_UNSETTLED).await, 0);
    assert_eq!(s.count("emails WHERE status = 'pending'").await, 0);
    worker.stop().await.expect("clean stop");

    let subjects = s.subjects();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.iter().any(|t| t == FAILED), "{subjects:?}");
    assert!(s.deletes().is_empty());
    assert_eq!(
        s.run().await,
        ("recovered".into(), 1, Some("invoice paid".into()))
    );
}

#[tokio::test]
async fn a_failing_cancellation_is_retried_with_the_same_idempotency_key() {
    let s = Setup::start().await;
    s.stripe.fail_next_method("DELETE", &[500]);
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;

    s.run_the_schedule().await;
    assert_eq!(s.count("dunning_runs WHERE state = 'canceled'").await, 1);
    assert_eq!(s.count("emails WHERE status = 'pending'").await, 0);
    worker.stop().await.expect("clean stop");

    let deletes = s.deletes();
    assert_eq!(deletes.len(), 2, "the 500, then the retry");
    assert_eq!(deletes[0], deletes[1]);
    let cancellations = s.subjects().iter().filter(|t| *t == CANCELLED).count();
    assert_eq!(cancellations, 1);
}

#[tokio::test]
async fn nothing_is_cancelled_locally_unless_stripe_cancelled_it() {
    let s = Setup::start().await;
    s.stripe.fail_next_method("DELETE", &[400]);
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;
    s.deliver(4).await; // past_due

    s.run_the_schedule().await;
    assert_eq!(s.count("dead_letters WHERE kind = 'dunning_step'").await, 1);
    assert_eq!(s.count("emails WHERE status = 'pending'").await, 0);
    worker.stop().await.expect("clean stop");

    assert_eq!(s.run().await, ("active".into(), 3, None));
    let status: String = sqlx::query_scalar("SELECT status FROM subscriptions")
        .fetch_one(&s.app.db.pool)
        .await
        .expect("subscription");
    assert_eq!(status, "past_due");
    assert!(
        !s.subjects().iter().any(|t| t == CANCELLED),
        "{:?}",
        s.subjects()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_finds_the_subscription_already_cancelled_stops_the_run() {
    let s = Setup::start().await;
    let worker = TestWorker::spawn_with(&s.app.db.pool, s.settings()).await;
    s.fail_renewal().await;
    s.wait_for("SELECT count(*) FROM dunning_runs WHERE steps_done = 1", 1)
        .await;
    // Cancelled in Stripe's Dashboard; its webhook has not arrived.
    let path = format!("/v1/subscriptions/{SUBSCRIPTION}");
    let mut subscription = s.stripe.get(&path).expect("subscription");
    subscription["status"] = "canceled".into();
    s.stripe.put(&path, subscription);

    s.run_the_schedule().await;
    assert_eq!(s.count("dunning_runs WHERE state = 'stopped'").await, 1);
    assert_eq!(s.count(STEPS_UNSETTLED).await, 0);
    assert_eq!(s.count("emails WHERE status = 'pending'").await, 0);
    worker.stop().await.expect("clean stop");

    assert!(s.deletes().is_empty(), "nothing left to cancel");
    assert_eq!(
        s.run().await,
        (
            "stopped".into(),
            1,
            Some("subscription already canceled".into())
        )
    );
    assert!(
        !s.subjects().iter().any(|t| t == REMINDER),
        "{:?}",
        s.subjects()
    );
}
