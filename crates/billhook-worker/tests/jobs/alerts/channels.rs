//! Every channel against a real local server, with workers running as operators run them: a
//! real SMTP server process for email, local HTTP servers for the Slack-style webhook and the
//! application. A channel that is down is retried and holds up none of the others; two workers
//! evaluating every second still announce each transition once.

use std::time::{Duration, Instant};

use billhook_testkit::TestDatabase;
use billhook_testkit::TestWorker;
use billhook_testkit::hook_server::HookServer;
use billhook_testkit::smtp::{SmtpSink, free_port};
use billhook_testkit::worker::{settings_with_notify, settings_with_smtp};
use billhook_worker::alerts::settings::slack_url;
use billhook_worker::daemon::settings::RunSettings;
use chrono::Utc;
use serde_json::Value;

use super::{dead_letter, quiet};

const WAIT: Duration = Duration::from_secs(30);
const SLACK_SECRET: &str = "T0001/B0002/VerySecretSlackPath";
const NOTIFY_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Worker settings: SMTP on `smtp_port`, notices to `app`, posts to `slack`, one rule (any dead
/// letter), evaluated every second and resolved as soon as it is clear.
fn worker_settings(smtp_port: u16, app: &HookServer, slack: &HookServer) -> RunSettings {
    let notify = settings_with_notify(&app.url, NOTIFY_SECRET);
    let mut settings = settings_with_smtp(smtp_port);
    settings.notify = notify.notify;
    settings.email.max_attempts = 100;
    settings.alerts = billhook_worker::alerts::settings::AlertSettings {
        interval: Duration::from_secs(1),
        any_dead_letter: true,
        resolve_after: Duration::ZERO,
        email: vec!["oncall@example.com".into()],
        slack_url: Some(slack_url(&format!("{}/{SLACK_SECRET}", slack.url)).expect("slack url")),
        notify_app: true,
        console_url: Some("https://ops.example/console".parse().expect("url")),
        ..quiet()
    };
    settings
}

async fn pool(db: &TestDatabase) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&db.url)
        .await
        .expect("a pool of the worker's own")
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bodies(server: &HookServer) -> Vec<Value> {
    server
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

#[tokio::test]
async fn each_channel_is_told_once_and_a_channel_that_is_down_catches_up_without_holding_the_others()
 {
    let db = TestDatabase::new().await;
    // Slack fails twice, then accepts; SMTP is down until the test starts it; the application
    // answers at once.
    let slack = HookServer::start(&[500, 503], 200);
    let app = HookServer::start(&[], 204);
    let smtp_port = free_port();
    let settings = worker_settings(smtp_port, &app, &slack);
    // Two workers, each evaluating every second, each with connections of its own as two
    // processes have.
    let one = TestWorker::spawn_with(&pool(&db).await, settings.clone()).await;
    let two = TestWorker::spawn_with(&pool(&db).await, settings).await;

    let job = dead_letter(&db.pool, "send_email", Utc::now()).await;
    wait_until("the Slack post after two failures", async || {
        slack.received().iter().any(|r| r.answered == 200)
    })
    .await;
    wait_until("the application's notice", async || {
        !app.received().is_empty()
    })
    .await;
    // The email has been failing meanwhile: SMTP is down.
    wait_until("failed email attempts", async || {
        db.count("emails WHERE template = 'alert' AND attempts >= 2 AND status = 'pending'")
            .await
            == 1
    })
    .await;
    let mut sink = SmtpSink::start_on(smtp_port).await;
    let mail = sink.wait_for(1, WAIT).await;

    let posts = bodies(&slack);
    assert_eq!(
        posts.len(),
        3,
        "two failures and the delivery of one message"
    );
    assert!(
        posts.iter().all(|p| p == &posts[0]),
        "the same message each time"
    );
    let text = posts[0]["text"].as_str().expect("text");
    assert!(
        text.starts_with("*Alert: A dead letter is waiting*"),
        "{text}"
    );
    assert!(text.contains("1 not requeued (alert on any)"), "{text}");
    assert!(
        text.contains(&format!(
            "<https://ops.example/console/dead-letters?kind=send_email|send_email job {job}>"
        )),
        "{text}"
    );
    assert!(text.contains("What to do: Open the dead letters"), "{text}");
    assert_eq!(
        db.count("alert_posts WHERE status = 'delivered' AND attempts = 3")
            .await,
        1
    );

    let notices = bodies(&app);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["type"], "alert.opened");
    assert_eq!(notices[0]["data"]["rule"], "any_dead_letter");
    let received = &app.received()[0];
    assert!(received.header("webhook-signature").starts_with("v1,"));

    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["to"], "oncall@example.com");
    assert_eq!(
        mail[0]["subject"],
        "[Billhook] Alert: A dead letter is waiting"
    );
    let body = mail[0]["text"].as_str().expect("text part");
    assert!(
        body.contains("https://ops.example/console/dead-letters?kind=send_email"),
        "{body}"
    );

    // Requeued: the rule is clear, and the resolution goes out once on every channel.
    sqlx::query("UPDATE dead_letters SET requeued_at = now() WHERE job_id = $1")
        .bind(&job)
        .execute(&db.pool)
        .await
        .expect("requeue");
    wait_until("the resolution on every channel", async || {
        slack.received().len() == 4 && app.received().len() == 2 && sink.messages().len() == 2
    })
    .await;
    let resolved = &bodies(&slack)[3];
    assert!(
        resolved["text"]
            .as_str()
            .expect("text")
            .starts_with("*Resolved: A dead letter is waiting*"),
        "{resolved}"
    );
    assert_eq!(bodies(&app)[1]["type"], "alert.resolved");
    assert_eq!(
        sink.messages()[1]["subject"],
        "[Billhook] Resolved: A dead letter is waiting"
    );
    // Both workers kept evaluating every second: still one incident, told once each way.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slack.received().len(), 4);
    assert_eq!(app.received().len(), 2);
    assert_eq!(sink.messages().len(), 2);
    assert_eq!(db.count("alert_incidents").await, 1);
    assert_eq!(db.count("alert_history").await, 2);

    // No secret in anything sent.
    let mut sent: Vec<String> = bodies(&slack).iter().map(Value::to_string).collect();
    sent.extend(bodies(&app).iter().map(Value::to_string));
    sent.extend(sink.messages().iter().map(Value::to_string));
    for message in &sent {
        assert!(!message.contains("VerySecretSlackPath"), "{message}");
        assert!(!message.contains(NOTIFY_SECRET), "{message}");
    }
    one.stop().await.expect("clean stop");
    two.stop().await.expect("clean stop");
    sink.stop();
}
