//! Each rule fires on its condition and stays quiet below it, evaluated at a chosen instant
//! over rows seeded at known times.

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::{TestDatabase, TestReceiver};
use billhook_worker::alerts::rules::{self, Finding, Rule};
use billhook_worker::alerts::settings::{AgeRule, AlertSettings, CountRule};
use billhook_worker::queue;
use billhook_worker::queue::jobs::SendEmail;
use chrono::Utc;
use std::time::Duration;

use super::{dead_letter, event_failures, minutes, quiet};

async fn finding(
    pool: &sqlx::PgPool,
    settings: &AlertSettings,
    at: chrono::DateTime<Utc>,
    rule: Rule,
) -> Finding {
    rules::evaluate(pool, settings, at)
        .await
        .expect("evaluate")
        .into_iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("{rule:?} was evaluated"))
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn counts_over_a_window_fire_above_their_threshold_only() {
    let db = TestDatabase::new().await;
    let now = Utc::now();
    let settings = AlertSettings {
        event_failures: CountRule::Above {
            count: 5,
            window: HOUR,
        },
        dead_letters: CountRule::Above {
            count: 2,
            window: HOUR,
        },
        rejected: CountRule::Above {
            count: 3,
            window: HOUR,
        },
        ..quiet()
    };
    // Only the rules that are on are evaluated.
    assert_eq!(
        rules::evaluate(&db.pool, &quiet(), now)
            .await
            .expect("evaluate"),
        vec![]
    );

    // Five failures in the hour is the threshold, not above it; one outside the window.
    event_failures(&db.pool, 5, now - minutes(30)).await;
    event_failures(&db.pool, 1, now - minutes(61)).await;
    let f = finding(&db.pool, &settings, now, Rule::EventFailures).await;
    assert!(!f.firing, "{f:?}");
    assert_eq!(f.value, 5.0);
    event_failures(&db.pool, 1, now - minutes(1)).await;
    let f = finding(&db.pool, &settings, now, Rule::EventFailures).await;
    assert!(f.firing, "{f:?}");
    assert_eq!((f.value, f.threshold), (6.0, 5.0));
    assert_eq!(f.figure, "6 in the last 1h (alert above 5)");
    let items = f.detail["items"].as_array().expect("items");
    assert_eq!(items.len(), 5, "the first few, not all");
    assert_eq!(items[0]["kind"], "event");
    // An hour later the same failures are out of the window.
    assert!(
        !finding(&db.pool, &settings, now + minutes(61), Rule::EventFailures)
            .await
            .firing
    );

    dead_letter(&db.pool, "send_email", now - minutes(10)).await;
    dead_letter(&db.pool, "notify_app", now - minutes(90)).await;
    dead_letter(&db.pool, "process_event", now - minutes(5)).await;
    let f = finding(&db.pool, &settings, now, Rule::DeadLetters).await;
    assert!(!f.firing && f.value == 2.0, "{f:?}");
    dead_letter(&db.pool, "dunning_step", now - minutes(1)).await;
    let f = finding(&db.pool, &settings, now, Rule::DeadLetters).await;
    assert!(f.firing && f.value == 3.0, "{f:?}");
    assert_eq!(f.detail["items"][0]["job_kind"], "dunning_step");

    // Rejections: per minute and reason, signature reasons only.
    for (reason, count, ago) in [
        ("mismatch", 2, 3),
        ("outside_tolerance", 1, 50),
        ("too_large", 40, 2),
        ("mismatch", 9, 70),
    ] {
        sqlx::query("INSERT INTO rejected_deliveries (minute, reason, count) VALUES (date_trunc('minute', $1::timestamptz), $2, $3)")
            .bind(now - minutes(ago))
            .bind(reason)
            .bind(count as i64)
            .execute(&db.pool)
            .await
            .expect("rejection");
    }
    let f = finding(&db.pool, &settings, now, Rule::Rejected).await;
    assert!(!f.firing && f.value == 3.0, "{f:?}");
    assert_eq!(
        f.detail["by_reason"],
        serde_json::json!({ "mismatch": 2, "outside_tolerance": 1 })
    );
    sqlx::query("INSERT INTO rejected_deliveries (minute, reason, count) VALUES (date_trunc('minute', $1::timestamptz), 'no_v1_signature', 1)")
        .bind(now - minutes(20))
        .execute(&db.pool)
        .await
        .expect("rejection");
    let f = finding(&db.pool, &settings, now, Rule::Rejected).await;
    assert!(f.firing && f.value == 4.0, "{f:?}");
}

#[tokio::test]
async fn any_dead_letter_fires_until_it_is_requeued() {
    let db = TestDatabase::new().await;
    let settings = AlertSettings {
        any_dead_letter: true,
        ..quiet()
    };
    let now = Utc::now();
    assert!(
        !finding(&db.pool, &settings, now, Rule::AnyDeadLetter)
            .await
            .firing
    );
    let job = dead_letter(&db.pool, "send_email", now - minutes(600)).await;
    let f = finding(&db.pool, &settings, now, Rule::AnyDeadLetter).await;
    assert!(f.firing && f.value == 1.0, "{f:?}");
    sqlx::query("UPDATE dead_letters SET requeued_at = now() WHERE job_id = $1")
        .bind(&job)
        .execute(&db.pool)
        .await
        .expect("requeued");
    assert!(
        !finding(&db.pool, &settings, now, Rule::AnyDeadLetter)
            .await
            .firing
    );
}

#[tokio::test]
async fn emails_and_notices_fire_when_failing_for_longer_than_their_threshold() {
    let db = TestDatabase::new().await;
    let settings = AlertSettings {
        emails_failing: AgeRule::Longer(Duration::from_secs(30 * 60)),
        notices_failing: AgeRule::Longer(Duration::from_secs(15 * 60)),
        ..quiet()
    };
    let now = Utc::now();
    // Pending but never tried (held, or just written): not failing.
    sqlx::query(
        "INSERT INTO emails (id, template, source, recipient, data, status, attempts, created_at) VALUES \
           ('eml_held', 'payment_failed', 's1', 'a@example.com', '{}', 'pending', 0, $1), \
           ('eml_young', 'payment_receipt', 's2', 'a@example.com', '{}', 'pending', 2, $2), \
           ('eml_sent', 'payment_receipt', 's3', 'a@example.com', '{}', 'sent', 3, $1)",
    )
    .bind(now - minutes(300))
    .bind(now - minutes(20))
    .execute(&db.pool)
    .await
    .expect("emails");
    sqlx::query(
        "INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status, attempts, created_at) VALUES \
           ('ntf_young', 'order.paid', 'k1', 'evt_1', '{}', 'pending', 1, $1), \
           ('ntf_done', 'order.paid', 'k2', 'evt_1', '{}', 'delivered', 4, $2)",
    )
    .bind(now - minutes(10))
    .bind(now - minutes(300))
    .execute(&db.pool)
    .await
    .expect("notices");
    let f = finding(&db.pool, &settings, now, Rule::EmailsFailing).await;
    assert!(!f.firing, "{f:?}");
    assert!(
        !finding(&db.pool, &settings, now, Rule::NoticesFailing)
            .await
            .firing
    );

    // Ten minutes on, the email has failed for 30 min: still not longer. Then it is.
    assert!(
        !finding(&db.pool, &settings, now + minutes(10), Rule::EmailsFailing)
            .await
            .firing
    );
    let f = finding(&db.pool, &settings, now + minutes(11), Rule::EmailsFailing).await;
    assert!(f.firing, "{f:?}");
    assert_eq!(f.detail["items"][0]["id"], "eml_young");
    assert_eq!(f.detail["failing"], 1);
    let f = finding(&db.pool, &settings, now + minutes(6), Rule::NoticesFailing).await;
    assert!(f.firing, "{f:?}");
    assert_eq!(f.detail["items"][0]["kind"], "notice");
    // Delivered: clear.
    sqlx::query("UPDATE app_notifications SET status = 'delivered'")
        .execute(&db.pool)
        .await
        .expect("delivered");
    assert!(
        !finding(&db.pool, &settings, now + minutes(6), Rule::NoticesFailing)
            .await
            .firing
    );
}

#[tokio::test]
async fn a_job_waiting_too_long_and_a_silence_fire() {
    let app = TestReceiver::spawn().await;
    let pool = &app.db.pool;
    let settings = AlertSettings {
        oldest_job: AgeRule::Longer(Duration::from_secs(600)),
        no_events: AgeRule::Longer(Duration::from_secs(6 * 3600)),
        ..quiet()
    };
    let now = Utc::now();
    // No event ever: an account that never received one is silent.
    assert!(finding(pool, &settings, now, Rule::NoEvents).await.firing);
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    assert_eq!(app.deliver(&event).await.status(), 200);
    let now = Utc::now();
    assert!(
        !finding(pool, &settings, now + minutes(359), Rule::NoEvents)
            .await
            .firing
    );
    let f = finding(pool, &settings, now + minutes(361), Rule::NoEvents).await;
    assert!(f.firing, "{f:?}");

    // The event's job waits (no worker runs here).
    assert!(
        !finding(pool, &settings, now + minutes(9), Rule::OldestJob)
            .await
            .firing
    );
    let f = finding(pool, &settings, now + minutes(11), Rule::OldestJob).await;
    assert!(f.firing, "{f:?}");
    assert_eq!(f.detail["items"][0]["kind"], "job");
    // A job scheduled for later is not waiting.
    let mut conn = pool.acquire().await.expect("conn");
    sqlx::query("DELETE FROM apalis.jobs")
        .execute(&mut *conn)
        .await
        .expect("clear");
    let job = SendEmail::V1 {
        email_id: "eml_1".into(),
        event_id: None,
    };
    queue::push(&mut conn, &job, "later", 3, Some(now + minutes(60)))
        .await
        .expect("push");
    assert!(
        !finding(pool, &settings, now + minutes(30), Rule::OldestJob)
            .await
            .firing
    );
}

#[tokio::test]
async fn reconciliation_fires_on_a_failed_run_recovered_events_or_a_problem() {
    let db = TestDatabase::new().await;
    let settings = AlertSettings {
        reconcile: true,
        ..quiet()
    };
    let now = Utc::now();
    assert!(
        !finding(&db.pool, &settings, now, Rule::Reconcile)
            .await
            .firing,
        "no run yet"
    );
    let run = |outcome: &'static str,
               recovered: i32,
               problems: Vec<&'static str>,
               dry: bool,
               ago: i64| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO reconcile_runs (trigger, dry_run, started_at, finished_at, outcome, since, until, \
                                             events_recovered, recovered_sample, problems, error) \
                 VALUES ('schedule', $1, $2, $2, $3, $2, $2, $4, $5, $6, \
                         CASE WHEN $3 = 'failed' THEN 'Stripe answered 500' END)",
            )
            .bind(dry)
            .bind(now - minutes(ago))
            .bind(outcome)
            .bind(recovered)
            .bind((0..recovered).map(|i| format!("evt_lost_{i}")).collect::<Vec<_>>())
            .bind(problems)
            .execute(&pool)
            .await
            .expect("run");
        }
    };
    run("succeeded", 0, vec![], false, 60).await;
    assert!(
        !finding(&db.pool, &settings, now, Rule::Reconcile)
            .await
            .firing
    );
    run("succeeded", 2, vec![], false, 45).await;
    let f = finding(&db.pool, &settings, now, Rule::Reconcile).await;
    assert!(f.firing, "{f:?}");
    assert_eq!(f.detail["items"][1]["id"], "evt_lost_1");
    // A dry run says nothing about what happened.
    run("succeeded", 0, vec![], true, 40).await;
    assert!(
        finding(&db.pool, &settings, now, Rule::Reconcile)
            .await
            .firing
    );
    run("succeeded", 0, vec![], false, 30).await;
    assert!(
        !finding(&db.pool, &settings, now, Rule::Reconcile)
            .await
            .firing
    );
    run("failed", 0, vec![], false, 20).await;
    let f = finding(&db.pool, &settings, now, Rule::Reconcile).await;
    assert!(f.firing && f.figure.contains("failed"), "{f:?}");
    run(
        "succeeded",
        0,
        vec!["the webhook endpoint is disabled in Stripe"],
        false,
        10,
    )
    .await;
    let f = finding(&db.pool, &settings, now, Rule::Reconcile).await;
    assert!(f.firing && f.figure.contains("disabled"), "{f:?}");
}
