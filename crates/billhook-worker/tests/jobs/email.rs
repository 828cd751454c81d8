//! Emails through a real SMTP server process (crates/billhook-testkit/smtp/sink.py): each
//! template's content and headers, exactly one email per (source, template) however often an
//! event arrives, SMTP down then up, dead letter then requeue, and .eml files without SMTP.

use std::time::Duration;

use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::smtp::{SmtpSink, free_port};
use billhook_testkit::worker::{run_due_jobs, settings, settings_with_smtp, wait_for_count};
use billhook_testkit::{TestDatabase, TestReceiver, TestWorker};
use billhook_worker::email::{Mailer, NewEmail, Template};
use billhook_worker::queue::dead_letter::{self, Selection};
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(30);

/// Attempts of the emails these tests enqueue: enough to outlast a server that starts late.
const ATTEMPTS: u32 = 50;

async fn enqueue(pool: &PgPool, template: Template, source: &str, to: Option<&str>, data: Value) {
    enqueue_with(pool, template, source, to, data, ATTEMPTS).await;
}

async fn enqueue_with(
    pool: &PgPool,
    template: Template,
    source: &str,
    to: Option<&str>,
    data: Value,
    max_attempts: u32,
) {
    let mut tx = pool.begin().await.expect("begin");
    let mailer = Mailer {
        max_attempts,
        payment_failed_hold: std::time::Duration::ZERO,
    };
    let email = NewEmail {
        template,
        source,
        recipient: to,
        event_id: None,
        data,
        send_after: None,
    };
    assert!(mailer.enqueue(&mut tx, email).await.expect("enqueue"));
    tx.commit().await.expect("commit");
}

/// Waits until one email matches `condition` (SQL on `emails`): for a state in the middle of
/// a retry loop, where the queue never runs dry while the server stays down.
async fn wait_for_email(pool: &PgPool, condition: &str) {
    let sql = format!("SELECT count(*) FROM emails WHERE {condition}");
    wait_for_count(pool, &sql, 1, WAIT).await;
}

/// How many emails match `condition` (SQL on `emails`).
async fn emails(db: &TestDatabase, condition: &str) -> i64 {
    db.count(&format!("emails WHERE {condition}")).await
}

fn data() -> Value {
    json!({ "name": "Jenny Rosen", "amount": 5000, "amount_refunded": 2000, "currency": "usd",
        "order": "ord_1", "order_reference": "order_1001", "reference": "in_1",
        "description": "invoice in_1", "failure_reason": "Your card has insufficient funds.",
        "invoice": "in_1", "pay_url": "https://pay.example/in_1", "cancel_on": "2026-12-03",
        "trial_end": "2026-12-01", "subscription": "sub_1", "has_payment_method": false,
        "fully_refunded": false })
}

/// What each template's subject, text and HTML must say, with `data()`.
fn expected(template: Template) -> (&'static str, &'static str) {
    match template {
        Template::OrderConfirmation => ("Order order_1001 confirmed", "50.00 USD"),
        Template::PaymentReceipt => ("Receipt for your payment of 50.00 USD", "invoice in_1"),
        Template::PaymentFailed => (
            "Your payment of 50.00 USD did not go through",
            "Your card has insufficient funds.",
        ),
        Template::RefundConfirmation => ("Your refund of 20.00 USD", "20.00 USD"),
        Template::TrialEnding => ("Your trial ends on 2026-12-01", "Add a payment method"),
        Template::DunningReminder => ("Reminder: 50.00 USD is still due", "still outstanding"),
        Template::FinalWarning => (
            "Final notice: your subscription will be cancelled on 2026-12-03",
            "last reminder",
        ),
        Template::SubscriptionCancelled => ("Your subscription has been cancelled", "sub_1"),
        // An operator's email: the data above has no alert in it (tests/jobs/alerts/ send real ones).
        Template::Alert => ("[Billhook] Alert:", "What to do:"),
        Template::DailySummary => unreachable!("sent by tests/jobs/summary.rs with its figures"),
    }
}

/// Every template but the daily summary's, which needs a day's figures to render (its own
/// tests send it).
fn sent_here() -> Vec<Template> {
    Template::ALL
        .into_iter()
        .filter(|t| *t != Template::DailySummary)
        .collect()
}

#[tokio::test]
async fn every_template_arrives_with_its_content_and_headers() {
    let db = TestDatabase::new().await;
    let sink = SmtpSink::start().await;
    let worker = TestWorker::spawn_with(&db.pool, settings_with_smtp(sink.port)).await;
    for template in sent_here() {
        enqueue(
            &db.pool,
            template,
            "source_1",
            Some("jenny@example.com"),
            data(),
        )
        .await;
    }

    let messages = sink.wait_for(sent_here().len(), WAIT).await;
    run_due_jobs(&db.pool).await;
    assert_eq!(
        db.count("emails WHERE status = 'sent'").await,
        sent_here().len() as i64
    );
    for template in sent_here() {
        let (subject, says) = expected(template);
        let message = messages
            .iter()
            .find(|m| m["subject"] == subject)
            .unwrap_or_else(|| panic!("{template:?}: no message `{subject}` in {messages:?}"));
        assert_eq!(message["from"], "Billing <billing@example.com>");
        assert_eq!(message["to"], "jenny@example.com");
        assert_eq!(message["rcpt_to"], json!(["jenny@example.com"]));
        assert_eq!(message["reply_to"], "support@example.com");
        assert_eq!(message["content_type"], "multipart/alternative");
        let text = message["text"].as_str().expect("a text part");
        if matches!(template, Template::DunningReminder | Template::FinalWarning) {
            assert!(
                text.contains("https://pay.example/in_1"),
                "{template:?}: {text}"
            );
        }
        let html = message["html"].as_str().expect("an HTML part");
        // Customers are greeted; the operator's alert is not.
        let customer = template != Template::Alert;
        assert!(
            text.contains(says) && text.contains("Hello Jenny Rosen") == customer,
            "{template:?}: {text}"
        );
        assert!(
            html.contains(says) && html.contains("<p>Hello Jenny Rosen") == customer,
            "{template:?}: {html}"
        );
        let id: String = sqlx::query_scalar("SELECT id FROM emails WHERE template = $1")
            .bind(template.name())
            .fetch_one(&db.pool)
            .await
            .expect("email row");
        assert_eq!(message["message_id"], format!("<{id}@billhook>"));
    }
    worker.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_redelivered_or_reapplied_event_sends_nothing_more() {
    let app = TestReceiver::spawn().await;
    let sink = SmtpSink::start().await;
    let worker = TestWorker::spawn_with(&app.db.pool, settings_with_smtp(sink.port)).await;
    let event = fixtures::event("payment_intent.succeeded", ApiShape::Dahlia).expect("fixture");

    assert_eq!(app.deliver(&event).await.status(), 200);
    let messages = sink.wait_for(1, WAIT).await;
    assert_eq!(messages[0]["to"], "buyer@example.com");
    run_due_jobs(&app.db.pool).await;
    assert_eq!(emails(&app.db, "status = 'sent'").await, 1);

    // Stripe delivers it again, and an operator replays it in full.
    assert_eq!(app.deliver(&event).await.status(), 200);
    sqlx::query("UPDATE webhook_events SET status = 'received'")
        .execute(&app.db.pool)
        .await
        .expect("reset");
    let applier = Applier::new(&app.db.pool, billing::context());
    assert_eq!(
        applier.deliver(&event).await.expect("re-applied"),
        "applied"
    );

    assert_eq!(app.db.count("emails").await, 1);
    assert_eq!(
        app.db
            .count("apalis.jobs WHERE job_type = 'billhook.send_email'")
            .await,
        1,
        "no second SendEmail job exists to send it again"
    );
    worker.stop().await.expect("clean stop");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn with_the_smtp_server_down_the_email_is_retried_and_sent_once_it_is_up() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let worker = TestWorker::spawn_with(&db.pool, settings_with_smtp(port)).await;
    enqueue(
        &db.pool,
        Template::PaymentReceipt,
        "pi_1",
        Some("jenny@example.com"),
        data(),
    )
    .await;
    wait_for_email(
        &db.pool,
        "attempts >= 2 AND last_error IS NOT NULL AND status = 'pending'",
    )
    .await;

    let sink = SmtpSink::start_on(port).await;
    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'sent'").await, 1);
    worker.stop().await.expect("clean stop");

    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
    assert_eq!(db.count("dead_letters").await, 0);
}

/// A server that accepts the connection and never greets: each attempt fails at the SMTP
/// deadline instead of holding the job (and a worker slot) for as long as the server is silent.
#[tokio::test]
async fn a_silent_smtp_server_fails_each_attempt_at_the_deadline_and_a_real_one_gets_the_email() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let mut silent = SmtpSink::start_silent_on(port).await;
    let mut settings = settings_with_smtp(port);
    settings.email.smtp_timeout = Duration::from_secs(1);
    let worker = TestWorker::spawn_with(&db.pool, settings).await;
    enqueue(
        &db.pool,
        Template::PaymentReceipt,
        "pi_silent",
        Some("jenny@example.com"),
        data(),
    )
    .await;

    wait_for_email(
        &db.pool,
        "attempts >= 2 AND status = 'pending' AND last_error LIKE '%did not accept the message within%'",
    )
    .await;

    silent.stop();
    let sink = SmtpSink::start_on(port).await;
    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'sent'").await, 1);
    worker.stop().await.expect("clean stop");
    assert_eq!(sink.messages().len(), 1);
}

/// The server accepts the message, then never answers QUIT: the email is sent, and marked so
/// at once, not retried (which would deliver it twice).
#[tokio::test]
async fn a_message_the_server_accepted_is_marked_sent_even_if_it_then_falls_silent() {
    let db = TestDatabase::new().await;
    let sink = SmtpSink::start_silent_after_data().await;
    let mut settings = settings_with_smtp(sink.port);
    settings.email.smtp_timeout = Duration::from_secs(1);
    let worker = TestWorker::spawn_with(&db.pool, settings).await;
    enqueue(
        &db.pool,
        Template::PaymentReceipt,
        "pi_quiet_quit",
        Some("jenny@example.com"),
        data(),
    )
    .await;

    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'sent'").await, 1);
    assert_eq!(db.count("apalis.jobs WHERE status = 'Done'").await, 1);
    worker.stop().await.expect("clean stop");
    assert_eq!(sink.messages().len(), 1, "delivered exactly once");
    assert_eq!(db.count("emails WHERE attempts = 1").await, 1);
    assert_eq!(db.count("job_failures").await, 0);
}

/// A failure before anything is sent (a recipient that is not an address) is an attempt too:
/// the dead email's attempts agree with its dead letter's.
#[tokio::test]
async fn a_dead_emails_attempts_agree_with_its_dead_letter() {
    let db = TestDatabase::new().await;
    let _worker = TestWorker::spawn_with(&db.pool, settings()).await;
    enqueue(
        &db.pool,
        Template::PaymentReceipt,
        "pi_bad",
        Some("not an address"),
        data(),
    )
    .await;
    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'dead' AND attempts = 1").await, 1);
    assert_eq!(
        db.count("dead_letters WHERE kind = 'send_email' AND attempts = 1")
            .await,
        1
    );
}

#[tokio::test]
async fn an_email_that_ran_out_of_attempts_is_dead_lettered_and_requeue_sends_it() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let worker = TestWorker::spawn_with(&db.pool, settings_with_smtp(port)).await;
    enqueue_with(
        &db.pool,
        Template::PaymentReceipt,
        "pi_1",
        Some("jenny@example.com"),
        data(),
        2,
    )
    .await;
    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'dead'").await, 1);
    assert_eq!(db.count("dead_letters WHERE kind = 'send_email'").await, 1);

    let sink = SmtpSink::start_on(port).await;
    let selection = Selection {
        event_type: Some("send_email".into()),
        ..Selection::default()
    };
    let requeued = dead_letter::requeue(&db.pool, &selection, "ana", "SMTP is back", false)
        .await
        .expect("requeue");
    assert_eq!(requeued.len(), 1);
    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'sent'").await, 1);
    worker.stop().await.expect("clean stop");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn without_smtp_emails_are_written_as_eml_files() {
    let db = TestDatabase::new().await;
    let dir = std::env::temp_dir().join(format!("billhook-mail-{}", ulid::Ulid::generate()));
    let mut settings = settings();
    settings.email.dir = dir.clone();
    let worker = TestWorker::spawn_with(&db.pool, settings).await;
    enqueue(
        &db.pool,
        Template::OrderConfirmation,
        "ord_1",
        Some("jenny@example.com"),
        data(),
    )
    .await;
    run_due_jobs(&db.pool).await;
    assert_eq!(emails(&db, "status = 'sent'").await, 1);
    worker.stop().await.expect("clean stop");

    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the mail dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].path()).expect("the .eml");
    assert!(eml.contains("Subject: Order order_1001 confirmed"), "{eml}");
    assert!(eml.contains("To: jenny@example.com"), "{eml}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn an_email_without_a_recipient_is_recorded_as_skipped() {
    let db = TestDatabase::new().await;
    enqueue(&db.pool, Template::PaymentReceipt, "pi_1", None, data()).await;
    assert_eq!(db.count("emails WHERE status = 'skipped'").await, 1);
    assert_eq!(db.count("apalis.jobs").await, 0);
}

#[tokio::test]
async fn a_recipient_the_server_refuses_is_dead_lettered_at_once() {
    let db = TestDatabase::new().await;
    let sink = SmtpSink::start().await;
    let worker = TestWorker::spawn_with(&db.pool, settings_with_smtp(sink.port)).await;
    // The sink, like a real server, has no mailbox in the reserved .invalid domain: 550.
    enqueue(
        &db.pool,
        Template::PaymentReceipt,
        "pi_1",
        Some("jenny@example.invalid"),
        data(),
    )
    .await;

    run_due_jobs(&db.pool).await;
    assert_eq!(
        db.count("dead_letters WHERE kind = 'send_email' AND attempts = 1")
            .await,
        1
    );
    worker.stop().await.expect("clean stop");
    let (status, attempts, error): (String, i32, String) =
        sqlx::query_as("SELECT status, attempts, last_error FROM emails")
            .fetch_one(&db.pool)
            .await
            .expect("the email");
    assert_eq!((status.as_str(), attempts), ("dead", 1), "{error}");
    assert!(error.contains("mailbox unavailable"), "{error}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn smtp_credentials_are_used_and_refused_ones_dead_letter_the_email() {
    for (password, accepted) in [("s3cret-pass", true), ("wrong-pass", false)] {
        let db = TestDatabase::new().await;
        let sink = SmtpSink::start_with_auth("billhook", "s3cret-pass").await;
        let mut settings = settings_with_smtp(sink.port);
        settings.email.smtp_username = Some("billhook".into());
        settings.email.smtp_password = Some(secrecy::SecretString::from(password));
        let worker = TestWorker::spawn_with(&db.pool, settings).await;
        enqueue(
            &db.pool,
            Template::PaymentReceipt,
            "pi_1",
            Some("jenny@example.com"),
            data(),
        )
        .await;

        if accepted {
            let messages = sink.wait_for(1, WAIT).await;
            assert_eq!(messages[0]["auth_user"], "billhook");
        } else {
            // A refused login is the server's last word until someone fixes the setting.
            run_due_jobs(&db.pool).await;
            assert_eq!(emails(&db, "status = 'dead' AND attempts = 1").await, 1);
            let error: String = sqlx::query_scalar("SELECT last_error FROM emails")
                .fetch_one(&db.pool)
                .await
                .expect("the email");
            assert!(error.contains("credentials invalid"), "{error}");
            assert!(!error.contains(password), "the password leaked: {error}");
            assert!(sink.messages().is_empty());
        }
        worker.stop().await.expect("clean stop");
    }
}

/// A run of a SendEmail job that finds another run holding the email (apalis hands a job to a
/// second worker when the first one's heartbeat lapses, even if it is alive and only slow)
/// waits for it instead of sending too; a lease left by a run that died has run out and is
/// taken over.
#[tokio::test]
async fn a_run_waits_while_another_run_holds_the_email_and_takes_over_a_lapsed_lease() {
    use billhook_worker::email::job::SendEmailJob;
    use billhook_worker::queue::JobKind as _;
    use billhook_worker::queue::jobs::SendEmail;

    let db = TestDatabase::new().await;
    let sink = SmtpSink::start().await;
    let settings = settings_with_smtp(sink.port);
    for source in ["pi_held", "pi_lapsed"] {
        enqueue(
            &db.pool,
            Template::PaymentReceipt,
            source,
            Some("jenny@example.com"),
            data(),
        )
        .await;
    }
    let id_of = |source: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT id FROM emails WHERE source = $1")
                .bind(source)
                .fetch_one(&pool)
                .await
                .expect("the email")
        }
    };
    let (held, lapsed) = (id_of("pi_held").await, id_of("pi_lapsed").await);
    sqlx::query("UPDATE emails SET sending_until = now() + interval '1 minute' WHERE id = $1")
        .bind(&held)
        .execute(&db.pool)
        .await
        .expect("another run holds it");
    sqlx::query("UPDATE emails SET sending_until = now() - interval '1 second' WHERE id = $1")
        .bind(&lapsed)
        .execute(&db.pool)
        .await
        .expect("a dead run held it");
    let job =
        std::sync::Arc::new(SendEmailJob::new(db.pool.clone(), &settings.email).expect("job"));
    let run = |email_id: String| {
        let job = job.clone();
        async move {
            job.run(SendEmail::V1 {
                email_id,
                event_id: None,
            })
            .await
        }
    };

    let waiting = tokio::spawn(run(held.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sink.messages().is_empty(), "sent while another run held it");
    // The other run finishes: the waiting one finds the email sent and sends nothing.
    sqlx::query("UPDATE emails SET status = 'sent', sending_until = NULL WHERE id = $1")
        .bind(&held)
        .execute(&db.pool)
        .await
        .expect("the other run's mark");
    waiting
        .await
        .expect("the run ends")
        .expect("nothing left to do");
    assert!(sink.messages().is_empty());

    run(lapsed.clone())
        .await
        .expect("the lapsed lease is taken over");
    let messages = sink.wait_for(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(
        db.count("emails WHERE status = 'sent' AND attempts = 1")
            .await,
        1,
        "the lapsed one, sent by its first run"
    );
}
