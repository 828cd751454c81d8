//! The daily summary: a seeded day's figures against SQL written here independently, the email
//! sent once with two workers and a restart in between (its chart a real PNG), a missed day
//! sent when a worker comes back, the `summary` command, and nothing personal or secret in it.

use std::collections::HashMap;
use std::time::Duration;

use billhook_testkit::billing::{Applier, context, create_order};
use billhook_testkit::fixtures::ApiShape;
use billhook_testkit::scenarios::{self, Scenario};
use billhook_testkit::smtp::SmtpSink;
use billhook_testkit::worker::settings_with_smtp;
use billhook_testkit::{TestDatabase, TestWorker};
use billhook_worker::email::Mailer;
use billhook_worker::summary::figures::{self, Day};
use billhook_worker::summary::settings::{SummarySettings, send_at};
use billhook_worker::summary::{Summaries, due_day};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(30);

/// A zone whose local time is near noon now, so that "today" there holds everything the test
/// writes whatever the hour the test runs at.
fn noon_zone() -> Tz {
    let hour = i32::try_from(chrono::Timelike::hour(&Utc::now())).expect("hour");
    let ahead = 12 - hour; // UTC+ahead; Etc/GMT names carry the opposite sign.
    let name = match ahead {
        0 => "Etc/GMT".to_owned(),
        a if a > 0 => format!("Etc/GMT-{a}"),
        a => format!("Etc/GMT+{}", -a),
    };
    name.parse().expect("an Etc/GMT zone")
}

fn today(zone: Tz) -> NaiveDate {
    Utc::now().with_timezone(&zone).date_naive()
}

/// Every billing story applied now (their events' times moved to now), plus what a day of
/// operations leaves: rejected deliveries, failures, dead letters, a reconcile run, an alert;
/// and a few of those a week before.
async fn seed(db: &TestDatabase) {
    let applier = Applier::new(&db.pool, context());
    create_order(&db.pool, scenarios::ORDER_REFERENCE, scenarios::SESSION).await;
    let now = Utc::now().timestamp();
    for scenario in Scenario::ALL {
        for (n, mut event) in scenario.events(ApiShape::Dahlia).into_iter().enumerate() {
            event["created"] = (now - 600 + n as i64).into();
            event["id"] = format!("evt_{}_{n}", ulid::Ulid::generate()).into();
            let _ = applier.deliver(&event).await;
        }
    }
    // Refunds carry Stripe's own creation time: today's, as they would.
    sqlx::query("UPDATE refunds SET created = now() - interval '5 minutes'")
        .execute(&db.pool)
        .await
        .expect("refund time");
    for (sql, what) in [
        (
            "INSERT INTO rejected_deliveries (minute, reason, count) VALUES \
            (date_trunc('minute', now()), 'mismatch', 4), (date_trunc('minute', now()) - interval '1 minute', 'too_large', 1), \
            (date_trunc('minute', now()) - interval '7 days', 'mismatch', 9)",
            "rejections",
        ),
        (
            "INSERT INTO job_failures (job_id, kind, attempt, retryable, error, failed_at, event_id) VALUES \
            ('j1', 'process_event', 1, true, 'x', now(), 'evt_failing_1'), \
            ('j1', 'process_event', 2, false, 'x', now(), 'evt_failing_1'), \
            ('j2', 'send_email', 1, true, 'x', now(), NULL), \
            ('j3', 'process_event', 1, true, 'x', now() - interval '7 days', 'evt_old')",
            "failures",
        ),
        (
            "INSERT INTO dead_letters (job_id, kind, queue, argument, error, attempts, history, dead_at) VALUES \
            ('j1', 'process_event', 'q', '{}', 'x', 2, '[]', now()), \
            ('j9', 'send_email', 'q', '{}', 'x', 5, '[]', now()), \
            ('j8', 'notify_app', 'q', '{}', 'x', 5, '[]', now() - interval '7 days')",
            "dead letters",
        ),
        (
            "INSERT INTO reconcile_runs (trigger, started_at, finished_at, outcome, since, until, events_recovered) VALUES \
            ('schedule', now(), now(), 'succeeded', now(), now(), 3), \
            ('schedule', now(), now(), 'failed', now(), now(), 0)",
            "reconcile runs",
        ),
        (
            "INSERT INTO alert_incidents (id, rule, threshold, value, peak, detail, opened_at, last_fired_at, last_notified_at) \
            VALUES ('alr_1', 'dead_letters', 10, 11, 11, '{}', now(), now(), now())",
            "incident",
        ),
        (
            "INSERT INTO alert_history (incident_id, action, at) VALUES ('alr_1', 'opened', now())",
            "alert",
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// type, status, received_at, created, body.
type StoredEvent = (String, String, DateTime<Utc>, DateTime<Utc>, Vec<u8>);

async fn scalar(pool: &PgPool, sql: &str, day: &Day) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(day.start)
        .bind(day.end)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn a_seeded_days_figures_agree_with_independent_sql() {
    let db = TestDatabase::new().await;
    seed(&db).await;
    let zone = noon_zone();
    let day = Day::new(today(zone), zone);
    let f = figures::figures(&db.pool, &day).await.expect("figures");
    let pool = &db.pool;

    // Written here another way: the events read back in Rust.
    let events: Vec<StoredEvent> =
        sqlx::query_as("SELECT type, status, received_at, created, body FROM webhook_events")
            .fetch_all(pool)
            .await
            .expect("events");
    let in_day = |t: &DateTime<Utc>| *t >= day.start && *t < day.end;
    let received: Vec<_> = events.iter().filter(|e| in_day(&e.2)).collect();
    assert!(
        received.len() > 30,
        "the stories were delivered: {}",
        received.len()
    );
    assert_eq!(f.events_received, received.len() as i64);
    let mut outcomes: HashMap<&str, i64> = HashMap::new();
    for e in &received {
        *outcomes.entry(e.1.as_str()).or_default() += 1;
    }
    for (status, n) in &outcomes {
        assert_eq!(f.outcomes.get(*status), Some(n), "{status}");
    }
    assert_eq!(f.outcomes.len(), outcomes.len());
    assert_eq!(
        f.by_type.iter().map(|t| t.total).sum::<i64>(),
        received.len() as i64
    );
    // Money: each succeeded PaymentIntent of the day once, by currency.
    let mut paid: HashMap<String, (String, i64)> = HashMap::new();
    for e in events.iter().filter(|e| in_day(&e.3)) {
        let body: Value = serde_json::from_slice(&e.4).expect("JSON");
        let o = &body["data"]["object"];
        let counts = e.0 == "payment_intent.succeeded"
            || (e.0 == "charge.succeeded" && o["payment_intent"].is_null());
        if counts {
            let amount = o["amount_received"]
                .as_i64()
                .or(o["amount"].as_i64())
                .expect("amount");
            paid.insert(
                o["id"].as_str().expect("id").to_owned(),
                (
                    o["currency"].as_str().expect("currency").to_lowercase(),
                    amount,
                ),
            );
        }
    }
    assert!(!paid.is_empty(), "a payment succeeded today");
    let mut by_currency: HashMap<String, (i64, i64)> = HashMap::new();
    for (currency, amount) in paid.values() {
        let entry = by_currency.entry(currency.clone()).or_default();
        entry.0 += amount;
        entry.1 += 1;
    }
    assert_eq!(f.paid.len(), by_currency.len());
    for m in &f.paid {
        assert_eq!(by_currency[&m.currency], (m.amount, m.count), "{m:?}");
    }
    let refunded: Vec<(String, i64)> = sqlx::query_as(
        "SELECT currency, amount FROM refunds WHERE status IS DISTINCT FROM 'failed'",
    )
    .fetch_all(pool)
    .await
    .expect("refunds");
    assert!(!refunded.is_empty());
    assert_eq!(
        f.refunded.iter().map(|m| m.amount).sum::<i64>(),
        refunded.iter().map(|r| r.1).sum::<i64>()
    );
    // Changes: from the mirror's own rows where it has them.
    let orders_paid = scalar(pool, "SELECT count(*) FROM orders WHERE paid_at IS NOT NULL AND updated_at >= $1 AND updated_at < $2", &day).await;
    assert!(orders_paid > 0);
    assert_eq!(f.orders_paid, orders_paid);
    assert_eq!(
        f.orders_refunded,
        scalar(pool, "SELECT count(*) FROM orders WHERE status IN ('refunded', 'partially_refunded') AND updated_at >= $1 AND updated_at < $2", &day).await
    );
    assert_eq!(
        f.subscriptions_new,
        scalar(pool, "SELECT count(DISTINCT id) FROM subscriptions WHERE updated_at >= $1 AND updated_at < $2", &day).await,
        "every subscription was first seen today"
    );
    assert_eq!(
        f.subscriptions_cancelled,
        scalar(pool, "SELECT count(*) FROM (SELECT DISTINCT entity_id FROM audit_log WHERE entity = 'subscription' AND detail @> '{\"status\": \"canceled\"}' AND at >= $1 AND at < $2) s", &day).await
    );
    assert_eq!(
        f.dunning_opened,
        scalar(
            pool,
            "SELECT count(*) FROM dunning_runs WHERE updated_at >= $1 AND updated_at < $2",
            &day
        )
        .await
    );
    assert_eq!(
        f.emails_sent,
        scalar(
            pool,
            "SELECT count(*) FROM emails WHERE status = 'sent' AND sent_at >= $1 AND sent_at < $2",
            &day
        )
        .await
    );
    // Operations, as seeded.
    assert_eq!(
        (f.rejected_total, f.rejected.get("mismatch").copied()),
        (5, Some(4))
    );
    assert_eq!(f.event_failures, 2);
    assert_eq!(f.dead_letters_total, 2);
    assert_eq!(f.emails_failed, 1);
    assert_eq!(
        (f.reconcile_runs, f.reconcile_failed, f.reconcile_recovered),
        (2, 1, 3)
    );
    assert_eq!((f.alerts_opened, f.alerts_resolved), (1, 0));
    assert!(f.lag_p50_seconds.is_some());

    // The week before: only what was seeded there.
    let before = figures::figures(pool, &day.week_before())
        .await
        .expect("figures");
    assert_eq!(before.events_received, 0);
    assert_eq!(
        (
            before.rejected_total,
            before.event_failures,
            before.dead_letters_total
        ),
        (9, 1, 1)
    );

    // The hourly series adds up to the day.
    let hourly = figures::hourly(pool, &day).await.expect("hourly");
    assert_eq!(hourly.received.len(), 24);
    assert_eq!(hourly.received.iter().sum::<i64>(), f.events_received);
    assert_eq!(hourly.failed.iter().sum::<i64>(), f.event_failures);
}

fn summary_settings(at: &str) -> SummarySettings {
    SummarySettings {
        email: vec!["finance@example.com".into()],
        at: send_at(at).expect("valid"),
    }
}

async fn pool(db: &TestDatabase) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&db.url)
        .await
        .expect("a pool of the worker's own")
}

#[tokio::test]
async fn one_email_a_day_with_two_workers_and_a_restart_its_chart_a_real_png() {
    let db = TestDatabase::new().await;
    seed(&db).await;
    let sink = SmtpSink::start().await;
    let mut settings = settings_with_smtp(sink.port);
    // Due from midnight: yesterday's summary is due whenever the test runs.
    settings.summary = summary_settings("00:00 UTC");
    settings.alerts.console_url = Some("https://ops.example".parse().expect("url"));
    let one = TestWorker::spawn_with(&pool(&db).await, settings.clone()).await;
    let two = TestWorker::spawn_with(&pool(&db).await, settings.clone()).await;
    // The stories' own customer emails go out too: the summary is the one to finance.
    let summaries_sent = || -> Vec<Value> {
        sink.messages()
            .into_iter()
            .filter(|m| m["to"] == "finance@example.com")
            .collect()
    };
    let started = std::time::Instant::now();
    while summaries_sent().is_empty() {
        assert!(started.elapsed() < WAIT, "no summary sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = summaries_sent();
    one.stop().await.expect("clean stop");
    let three = TestWorker::spawn_with(&pool(&db).await, settings).await;
    // The first tick comes within 5 s of a start: give both a chance to send again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(summaries_sent().len(), 1, "one email for the day");
    assert_eq!(db.count("daily_summaries").await, 1);

    let yesterday = Utc::now().date_naive() - chrono::Duration::days(1);
    let message = &mail[0];
    assert_eq!(message["to"], "finance@example.com");
    assert_eq!(message["content_type"], "multipart/related");
    let subject = message["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with(&format!("[Billhook] {}", yesterday.format("%A %Y-%m-%d"))),
        "{subject}"
    );
    let text = message["text"].as_str().expect("text");
    for part in [
        "WEBHOOKS",
        "MONEY",
        "Events received:",
        "Rejected deliveries:",
        "Emails sent:",
        "Alerts opened:",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    let html = message["html"].as_str().expect("html");
    assert!(html.contains("src=\"cid:chart@billhook\""), "{html}");
    let images = message["images"].as_array().expect("images");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["content_type"], "image/png");
    assert_eq!(images[0]["content_id"], "<chart@billhook>");
    use base64::Engine as _;
    let png_bytes = base64::engine::general_purpose::STANDARD
        .decode(images[0]["base64"].as_str().expect("base64"))
        .expect("base64");
    let decoder = png::Decoder::new(std::io::Cursor::new(&png_bytes));
    let reader = decoder.read_info().expect("a valid PNG");
    assert_eq!((reader.info().width, reader.info().height), (720, 280));
    // Nothing about the customer or their card: ids and counts only.
    for message in summaries_sent() {
        let all = message.to_string();
        for private in [scenarios::EMAIL, "4242", "Jenny", "whsec_", "sk_test"] {
            assert!(!all.contains(private), "{private} in the summary");
        }
    }
    two.stop().await.expect("clean stop");
    three.stop().await.expect("clean stop");
}

fn summaries(db: &TestDatabase, at: &str) -> Summaries {
    Summaries {
        pool: db.pool.clone(),
        settings: summary_settings(at),
        mailer: Mailer {
            max_attempts: 3,
            payment_failed_hold: Duration::ZERO,
        },
        console_url: None,
    }
}

#[tokio::test]
async fn missed_days_are_sent_when_a_worker_comes_back_and_the_command_previews_or_resends() {
    let db = TestDatabase::new().await;
    let s = summaries(&db, "08:00 UTC");
    let now: DateTime<Utc> = "2026-12-10T09:00:00Z".parse().expect("time");
    let day = |d: &str| d.parse::<NaiveDate>().expect("date");
    assert_eq!(due_day(now, s.settings.at), day("2026-12-09"));
    // The first summary ever: only the day due.
    assert_eq!(s.tick(now).await.expect("tick"), [day("2026-12-09")]);
    assert!(s.tick(now).await.expect("tick").is_empty());
    // Down from the 10th to the 13th at 07:00: the 10th and 11th are sent on return; the 12th
    // waits for 08:00.
    let back: DateTime<Utc> = "2026-12-13T07:00:00Z".parse().expect("time");
    assert_eq!(
        s.tick(back).await.expect("tick"),
        [day("2026-12-10"), day("2026-12-11")]
    );
    let later: DateTime<Utc> = "2026-12-13T08:00:00Z".parse().expect("time");
    assert_eq!(s.tick(later).await.expect("tick"), [day("2026-12-12")]);
    // Down for a month: a week back at most.
    let month: DateTime<Utc> = "2027-01-13T09:00:00Z".parse().expect("time");
    assert_eq!(s.tick(month).await.expect("tick").len(), 7);
    assert_eq!(
        db.count("emails WHERE template = 'daily_summary'").await,
        11
    );

    // Sending again writes another copy; a day already sent is not written twice otherwise.
    assert!(!s.send(day("2026-12-09"), false).await.expect("send"));
    assert!(s.send(day("2026-12-09"), true).await.expect("send again"));
    assert_eq!(
        db.count("emails WHERE template = 'daily_summary' AND source LIKE 'summary:2026-12-09%'")
            .await,
        2
    );

    // The command: --print with the HTML and chart written out, and --send.
    let mut settings = billhook_testkit::worker::settings();
    settings.summary = summary_settings("08:00 UTC");
    let dir = std::env::temp_dir().join(format!("billhook-summary-{}", ulid::Ulid::generate()));
    billhook_worker::cli::summary::run(
        &db.pool,
        &settings,
        billhook_worker::cli::summary::SummaryArgs {
            date: day("2026-12-09"),
            print: true,
            send: false,
            html_to: Some(dir.clone()),
        },
    )
    .await
    .expect("print");
    let html = std::fs::read_to_string(dir.join("summary.html")).expect("html");
    assert!(html.contains("src=\"chart.png\""), "{html}");
    let chart = std::fs::read(dir.join("chart.png")).expect("chart");
    png::Decoder::new(std::io::Cursor::new(chart))
        .read_info()
        .expect("a PNG");
    std::fs::remove_dir_all(&dir).ok();
    billhook_worker::cli::summary::run(
        &db.pool,
        &settings,
        billhook_worker::cli::summary::SummaryArgs {
            date: day("2026-12-09"),
            print: false,
            send: true,
            html_to: None,
        },
    )
    .await
    .expect("send");
    assert_eq!(
        db.count("emails WHERE template = 'daily_summary' AND source LIKE 'summary:2026-12-09%'")
            .await,
        3
    );
}
