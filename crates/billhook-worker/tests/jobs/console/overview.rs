//! The console's overview against a database seeded with known figures: events per status and
//! minute (some outside the windows), jobs waiting and not, dead letters, emails, notices,
//! dunning runs, reconciliation runs and rejected deliveries; each figure is checked.

use billhook_testkit::TestDatabase;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::{Console, READ};

/// Inserts `n` events received at `received` (+ i ms for the i-th) with `status`, applied
/// `lags[i]` seconds after receipt when given.
async fn events(
    db: &TestDatabase,
    tag: &str,
    n: usize,
    status: &str,
    received: DateTime<Utc>,
    lags: Option<&[i64]>,
) {
    for i in 0..n {
        let at = received + Duration::milliseconds(i as i64);
        let applied = lags.map(|l| at + Duration::seconds(l[i]));
        sqlx::query(
            "INSERT INTO webhook_events (id, type, livemode, created, signed_at, received_at, body, \
                                         secret_label, status, attempts, applied_at) \
             VALUES ($1, 'customer.updated', false, $2, $2, $2, '\\x7b7d', 'test', $3, 1, $4)",
        )
        .bind(format!("evt_{tag}{i}"))
        .bind(at)
        .bind(status)
        .bind(applied)
        .execute(&db.pool)
        .await
        .expect("an event");
    }
}

async fn sql(db: &TestDatabase, statement: &str) {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// The value of the per-minute series `name` at the minute starting `at`.
fn at_minute(overview: &Value, name: &str, at: DateTime<Utc>) -> i64 {
    let minutes = overview["per_minute"]["minutes"]
        .as_array()
        .expect("minutes");
    let index = minutes
        .iter()
        .position(|m| m.as_i64() == Some(at.timestamp()))
        .unwrap_or_else(|| panic!("no minute {at} in the series"));
    overview["per_minute"][name][index]
        .as_i64()
        .expect("a count")
}

fn total(overview: &Value, name: &str) -> i64 {
    overview["per_minute"][name]
        .as_array()
        .expect("a series")
        .iter()
        .filter_map(Value::as_i64)
        .sum()
}

#[tokio::test]
async fn the_overview_reports_exactly_what_the_database_holds() {
    let db = TestDatabase::new().await;
    let console = Console::start(&db.pool).await;
    let (status, _) = console.get("/overview", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let empty = console.json("/overview").await;
    assert!(empty["reconcile_last_run"].is_null());
    assert!(empty["last_event_at"].is_null());
    assert!(empty["oldest_job"].is_null());
    assert!(empty["lag_p50_seconds"].is_null());
    assert_eq!(total(&empty, "received"), 0);

    let now: DateTime<Utc> = sqlx::query_scalar("SELECT date_trunc('minute', now())")
        .fetch_one(&db.pool)
        .await
        .expect("now");
    let half_hour_ago = now - Duration::minutes(30);
    let five_minutes_ago = now - Duration::minutes(5);
    // Applied in the last hour, 1 to 4 s after receipt, within their minute.
    events(
        &db,
        "a",
        4,
        "applied",
        half_hour_ago + Duration::seconds(10),
        Some(&[1, 2, 3, 4]),
    )
    .await;
    for (tag, n, status) in [
        ("i", 2, "ignored"),
        ("s", 1, "stale"),
        ("f", 3, "failed"),
        ("d", 1, "dead"),
        ("r", 2, "received"),
    ] {
        events(
            &db,
            tag,
            n,
            status,
            five_minutes_ago + Duration::seconds(5),
            None,
        )
        .await;
    }
    // Received two days ago: in no figure but nothing else.
    events(
        &db,
        "old",
        3,
        "applied",
        now - Duration::days(2),
        Some(&[1, 1, 1]),
    )
    .await;
    // Received 25 h ago, applied 3 h ago (after an outage): applied in the window, received not.
    let late = now - Duration::hours(25) + Duration::seconds(10);
    events(&db, "late", 1, "applied", late, Some(&[22 * 3600])).await;

    sql(&db, "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at) VALUES \
        (convert_to('{\"v\":\"1\"}', 'UTF8'), 'job_pending', 'billhook.send_email', 'Pending', 0, 5, now() - interval '90 seconds'), \
        (convert_to('{\"v\":\"1\"}', 'UTF8'), 'job_retrying', 'billhook.notify_app', 'Failed', 1, 5, now() - interval '30 seconds'), \
        (convert_to('{\"v\":\"1\"}', 'UTF8'), 'job_later', 'billhook.process_event', 'Pending', 0, 5, now() + interval '1 hour'), \
        (convert_to('{\"v\":\"1\"}', 'UTF8'), 'job_done', 'billhook.process_event', 'Done', 1, 5, now() - interval '2 hours'), \
        (convert_to('{\"v\":\"1\"}', 'UTF8'), 'job_spent', 'billhook.dunning_step', 'Failed', 5, 5, now() - interval '3 hours'), \
        (convert_to('{\"v\":\"1\"}', 'UTF8'), 'job_taken', 'billhook.process_event', 'Queued', 0, 5, now() - interval '1 hour')").await;
    sql(&db, "INSERT INTO dead_letters (job_id, kind, queue, argument, error, attempts, history, requeued_at) VALUES \
        ('dl1', 'send_email', 'billhook.send_email', '{}', 'boom', 5, '[]', NULL), \
        ('dl2', 'send_email', 'billhook.send_email', '{}', 'boom', 5, '[]', NULL), \
        ('dl3', 'notify_app', 'billhook.notify_app', '{}', 'boom', 5, '[]', NULL), \
        ('dl4', 'send_email', 'billhook.send_email', '{}', 'boom', 5, '[]', now())").await;
    sql(
        &db,
        "INSERT INTO emails (id, template, source, recipient, data, status, attempts) VALUES \
        ('eml_1', 'payment_receipt', 's1', 'a@example.com', '{}', 'pending', 0), \
        ('eml_2', 'payment_receipt', 's2', 'a@example.com', '{}', 'pending', 1), \
        ('eml_3', 'payment_receipt', 's3', 'a@example.com', '{}', 'dead', 5), \
        ('eml_4', 'payment_receipt', 's4', 'a@example.com', '{}', 'sent', 1), \
        ('eml_5', 'payment_receipt', 's5', NULL, '{}', 'skipped', 0)",
    )
    .await;
    sql(&db, "INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status, attempts) VALUES \
        ('ntf_1', 'order.paid', 'k1', 'evt_x', '{}', 'pending', 2), \
        ('ntf_2', 'order.paid', 'k2', 'evt_x', '{}', 'dead', 5), \
        ('ntf_3', 'order.paid', 'k3', 'evt_x', '{}', 'dead', 5), \
        ('ntf_4', 'order.paid', 'k4', 'evt_x', '{}', 'delivered', 1)").await;
    sql(&db, "INSERT INTO dunning_runs (id, invoice_id, subscription_id, customer_id, state, started_at, event_id) VALUES \
        ('dun_1', 'in_1', 'sub_1', 'cus_1', 'active', now(), 'evt_x'), \
        ('dun_2', 'in_2', 'sub_2', 'cus_2', 'active', now(), 'evt_x'), \
        ('dun_3', 'in_3', 'sub_3', 'cus_3', 'recovered', now(), 'evt_x')").await;
    sql(&db, "INSERT INTO reconcile_runs (trigger, started_at, since, until, outcome, events_recovered) VALUES \
        ('schedule', now() - interval '2 days', now() - interval '3 days', now() - interval '2 days', 'failed', 0), \
        ('command', date_trunc('minute', now()) - interval '1 hour', now() - interval '2 days', now() - interval '1 hour', 'succeeded', 3)").await;
    sql(
        &db,
        "INSERT INTO rejected_deliveries (minute, reason, count) VALUES \
        (date_trunc('minute', now()) - interval '10 minutes', 'mismatch', 3), \
        (date_trunc('minute', now()) - interval '20 minutes', 'mismatch', 2), \
        (date_trunc('minute', now()) - interval '20 minutes', 'outside_tolerance', 1), \
        (date_trunc('minute', now()) - interval '2 days', 'mismatch', 100)",
    )
    .await;

    let o = console.json("/overview").await;

    // Events per minute: dense over the last 24 h, each at its minute.
    let minutes = o["per_minute"]["minutes"].as_array().expect("minutes");
    assert!((1441..=1442).contains(&minutes.len()), "{}", minutes.len());
    assert_eq!(at_minute(&o, "received", half_hour_ago), 4);
    assert_eq!(at_minute(&o, "applied", half_hour_ago), 4);
    assert_eq!(at_minute(&o, "received", five_minutes_ago), 9);
    assert_eq!(at_minute(&o, "applied", five_minutes_ago), 0);
    assert_eq!(at_minute(&o, "received", now - Duration::hours(3)), 0);
    assert_eq!(at_minute(&o, "applied", now - Duration::hours(3)), 1);
    assert_eq!(total(&o, "received"), 13);
    assert_eq!(total(&o, "applied"), 5);

    // Outcomes of the events received in 24 h, every status.
    assert_eq!(
        o["outcomes_24h"],
        json!([
            { "name": "received", "count": 2 },
            { "name": "failed", "count": 3 },
            { "name": "dead", "count": 1 },
            { "name": "applied", "count": 4 },
            { "name": "ignored", "count": 2 },
            { "name": "stale", "count": 1 },
        ])
    );
    // Lag of the four applied in the last hour: 1, 2, 3 and 4 s (percentile_cont).
    let lag = |name: &str| o[name].as_f64().unwrap_or_else(|| panic!("{name}: {o}"));
    assert!((lag("lag_p50_seconds") - 2.5).abs() < 1e-6, "{o}");
    assert!((lag("lag_p99_seconds") - 3.97).abs() < 1e-6, "{o}");

    // Jobs: one pending for 90 s, one failed and due for a retry; not the one due later, the
    // finished, the exhausted or the one a worker has taken.
    assert_eq!(o["jobs_waiting"], 2);
    assert_eq!(o["oldest_job"]["kind"], "billhook.send_email");
    let waiting = o["oldest_job"]["waiting_seconds"]
        .as_f64()
        .expect("seconds");
    assert!((90.0..120.0).contains(&waiting), "{waiting}");

    assert_eq!(
        o["dead_letters"],
        json!([{ "name": "notify_app", "count": 1 }, { "name": "send_email", "count": 2 }])
    );
    assert_eq!(
        o["emails"],
        json!([{ "name": "dead", "count": 1 }, { "name": "pending", "count": 2 }])
    );
    assert_eq!(o["emails_failing"], 1);
    assert_eq!(
        o["notices"],
        json!([{ "name": "dead", "count": 2 }, { "name": "pending", "count": 1 }])
    );
    assert_eq!(o["notices_failing"], 1);
    assert_eq!(o["dunning_active"], 2);

    let last_event: DateTime<Utc> = o["last_event_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .expect("a time")
        .into();
    // The last of the nine received five minutes ago: the third failed one (+ 5 s, + 2 ms).
    assert_eq!(
        last_event,
        five_minutes_ago + Duration::seconds(5) + Duration::milliseconds(2)
    );

    let run = &o["reconcile_last_run"];
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["trigger"], "command");
    assert_eq!(run["events_recovered"], 3);
    assert_eq!(run["dry_run"], false);
    let started: DateTime<Utc> = run["started_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .expect("a time")
        .into();
    assert_eq!(started, now - Duration::hours(1));

    assert_eq!(
        o["rejected_24h"],
        json!([{ "name": "mismatch", "count": 5 }, { "name": "outside_tolerance", "count": 1 }])
    );
    let (status, _) = console.get("/overview", Some(READ)).await;
    assert_eq!(status, StatusCode::OK);
    console.stop().await;
}
