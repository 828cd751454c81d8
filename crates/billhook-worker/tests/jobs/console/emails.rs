//! The console's emails: the list's filters and keyset pages over emails written directly, and
//! an email the worker dead-lettered (its SMTP login refused) shown with its dead letter and
//! without the SMTP password.

use billhook_testkit::smtp::SmtpSink;
use billhook_testkit::worker::{run_due_jobs, settings_with_smtp};
use billhook_testkit::{TestDatabase, TestWorker};
use billhook_worker::email::{Mailer, NewEmail, Template};
use reqwest::StatusCode;
use serde_json::json;

use super::dunning::{every_page, read};
use super::harness::{Console, READ, ids};

/// Six emails, newest last: two at the same instant (the keyset's id breaks the tie).
async fn six_emails(db: &TestDatabase) {
    sqlx::query(
        "INSERT INTO emails (id, template, source, recipient, subject, data, event_id, status, attempts, created_at) \
         VALUES ('eml_a', 'payment_receipt',    'pi_a', 'Ana@Example.com', 'Receipt', '{}', 'evt_1', 'sent',    1, now() - interval '6 hours'), \
                ('eml_b', 'payment_failed',     'pi_b', 'ana@example.com', NULL,      '{}', 'evt_2', 'pending', 0, now() - interval '5 hours'), \
                ('eml_c', 'payment_receipt',    'pi_c', 'bo@example.com',  NULL,      '{}', 'evt_2', 'dead',    5, now() - interval '4 hours'), \
                ('eml_d', 'order_confirmation', 'or_d', NULL,              NULL,      '{}', NULL,    'skipped', 0, now() - interval '3 hours'), \
                ('eml_e', 'payment_receipt',    'pi_e', 'bo@example.com',  'Receipt', '{}', 'evt_3', 'sent',    1, now() - interval '3 hours'), \
                ('eml_f', 'dunning_reminder',   'dun_x:1', 'ana@example.com', NULL,   '{}', NULL,    'pending', 2, now() - interval '1 hour')",
    )
    .execute(&db.pool)
    .await
    .expect("emails");
    sqlx::query("UPDATE emails SET created_at = (SELECT created_at FROM emails WHERE id = 'eml_d') WHERE id = 'eml_e'")
        .execute(&db.pool)
        .await
        .expect("a tie");
}

#[tokio::test]
async fn emails_are_filtered_by_status_template_recipient_and_event_and_paged() {
    let db = TestDatabase::new().await;
    six_emails(&db).await;
    let console = Console::start(&db.pool).await;

    let all = read(&console, "/emails").await;
    let newest_first = ["eml_f", "eml_e", "eml_d", "eml_c", "eml_b", "eml_a"];
    assert_eq!(ids(&all, "emails", "id"), newest_first);
    for (filter, expected) in [
        ("status=pending", &["eml_f", "eml_b"][..]),
        ("status=dead", &["eml_c"]),
        ("status=skipped", &["eml_d"]),
        ("template=payment_receipt", &["eml_e", "eml_c", "eml_a"]),
        ("template=trial_ending", &[]),
        ("recipient=ANA@example.com", &["eml_f", "eml_b", "eml_a"]),
        ("event=evt_2", &["eml_c", "eml_b"]),
        ("status=sent&template=payment_receipt", &["eml_e", "eml_a"]),
        (
            "status=sent&recipient=bo@example.com&event=evt_3",
            &["eml_e"],
        ),
        ("template=&status=", &newest_first),
    ] {
        let page = read(&console, &format!("/emails?{filter}")).await;
        assert_eq!(ids(&page, "emails", "id"), expected, "{filter}");
    }
    assert_eq!(
        every_page(&console, "/emails", "emails").await,
        newest_first,
        "pages of two hold every email once, the tie included"
    );
    assert_eq!(
        every_page(&console, "/emails?template=payment_receipt", "emails").await,
        ["eml_e", "eml_c", "eml_a"]
    );

    let (status, body) = console.get("/emails?status=lost", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("pending, sent, skipped, dead"), "{body}");
    let (status, body) = console.get("/emails?template=invoice", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("payment_receipt"), "{body}");
    let (status, _) = console.get("/emails?cursor=bm8", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = console.get("/emails/eml_nope", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    console.stop().await;
}

/// The console refuses a template filter only for a template the worker does not have.
#[test]
fn the_consoles_templates_are_the_workers() {
    let workers: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(billhook_console::query::emails::TEMPLATES, workers);
}

#[tokio::test]
async fn a_dead_email_shows_its_content_attempts_and_dead_letter_and_no_smtp_secret() {
    const PASSWORD: &str = "wrong-pass-console";
    let db = TestDatabase::new().await;
    let sink = SmtpSink::start_with_auth("billhook", "s3cret-pass").await;
    let mut settings = settings_with_smtp(sink.port);
    settings.email.smtp_username = Some("billhook".into());
    settings.email.smtp_password = Some(secrecy::SecretString::from(PASSWORD));
    let worker = TestWorker::spawn_with(&db.pool, settings).await;
    let mut tx = db.pool.begin().await.expect("begin");
    let mailer = Mailer {
        max_attempts: 3,
        payment_failed_hold: std::time::Duration::ZERO,
    };
    let data = json!({ "name": "Jenny Rosen", "amount": 5000, "currency": "usd",
        "reference": "in_1", "description": "invoice in_1" });
    let email = NewEmail {
        template: Template::PaymentReceipt,
        source: "pi_console",
        recipient: Some("jenny@example.com"),
        event_id: None,
        data: data.clone(),
        send_after: None,
    };
    assert!(mailer.enqueue(&mut tx, email).await.expect("enqueue"));
    tx.commit().await.expect("commit");
    // A refused login is final: the email is dead after one attempt.
    run_due_jobs(&db.pool).await;
    worker.stop().await.expect("clean stop");
    let (id, job_id): (String, String) = sqlx::query_as(
        "SELECT e.id, d.job_id FROM emails e JOIN dead_letters d ON d.kind = 'send_email' \
          WHERE e.status = 'dead'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a dead email and its dead letter");
    let console = Console::start(&db.pool).await;

    let (status, body) = console.get(&format!("/emails/{id}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("jenny"), "{body}");
    let (status, body) = console.get(&format!("/emails/{id}"), Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.contains(PASSWORD), "the SMTP password leaked: {body}");
    let shown: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let email = &shown["email"];
    assert_eq!(email["id"], id.as_str());
    assert_eq!(email["template"], "payment_receipt");
    assert_eq!(email["source"], "pi_console");
    assert_eq!(email["recipient"], "jenny@example.com");
    assert_eq!(email["data"], data);
    assert_eq!(email["status"], "dead");
    assert_eq!(email["attempts"], 1);
    let last_error = email["last_error"].as_str().expect("an error");
    assert!(last_error.contains("credentials invalid"), "{last_error}");
    let dead = &shown["dead_letter"];
    assert_eq!(dead["job_id"], job_id.as_str());
    assert_eq!(dead["attempts"], 1);
    assert!(dead["requeued_at"].is_null());
    assert_eq!(dead["history"].as_array().map(Vec::len), Some(1));

    let listed = read(&console, "/emails?status=dead").await;
    assert_eq!(ids(&listed, "emails", "id"), [id.as_str()]);
    console.stop().await;
}
