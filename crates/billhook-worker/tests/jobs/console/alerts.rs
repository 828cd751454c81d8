//! Alert incidents in the console: the API's list, one incident with its history and the
//! messages it sent, acknowledging (operate only, through the worker's code, audited), the
//! overview's open incidents, and the pages' acknowledge form.

use billhook_testkit::TestDatabase;
use billhook_worker::alerts::Alerts;
use billhook_worker::alerts::channels::Channels;
use billhook_worker::alerts::settings::{AgeRule, AlertSettings, CountRule};
use billhook_worker::email::Mailer;
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::json;

use super::harness::{Console, OPERATE, Pages, READ, ids};

/// Opens an incident of `event_failures` (6 failures in the hour), emailed to one address.
async fn an_open_incident(db: &TestDatabase) -> (Alerts, String) {
    let now = Utc::now();
    for i in 0..6 {
        sqlx::query(
            "INSERT INTO job_failures (job_id, kind, attempt, retryable, error, failed_at, event_id) \
             VALUES ($1, 'process_event', 1, true, 'boom', $2, $3)",
        )
        .bind(format!("job_{i}"))
        .bind(now)
        .bind(format!("evt_{i}"))
        .execute(&db.pool)
        .await
        .expect("failure");
    }
    let alerts = Alerts {
        pool: db.pool.clone(),
        channels: Channels {
            settings: AlertSettings {
                dead_letters: CountRule::Off,
                rejected: CountRule::Off,
                notices_failing: AgeRule::Off,
                emails_failing: AgeRule::Off,
                oldest_job: AgeRule::Off,
                reconcile: false,
                resolve_after: std::time::Duration::ZERO,
                email: vec!["oncall@example.com".into()],
                ..AlertSettings::default()
            },
            mailer: Mailer {
                max_attempts: 3,
                payment_failed_hold: std::time::Duration::ZERO,
            },
            outbox: None,
        },
    };
    let evaluation = alerts.evaluate(now).await.expect("evaluate");
    let id = evaluation.transitions[0].1.incident_id.clone();
    (alerts, id)
}

#[tokio::test]
async fn incidents_are_listed_shown_and_acknowledged_by_an_operator_only() {
    let db = TestDatabase::new().await;
    let (alerts, id) = an_open_incident(&db).await;
    let console = Console::start(&db.pool).await;

    assert_eq!(
        console.get("/alerts", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let listed = console.json("/alerts").await;
    assert_eq!(ids(&listed, "alerts", "id"), [id.as_str()]);
    assert_eq!(listed["alerts"][0]["rule"], "event_failures");
    assert_eq!(
        listed["alerts"][0]["figure"],
        "6 in the last 1h (alert above 5)"
    );
    assert_eq!(
        ids(
            &console.json("/alerts?state=resolved").await,
            "alerts",
            "id"
        )
        .len(),
        0
    );
    assert_eq!(
        ids(
            &console.json("/alerts?rule=event_failures&state=open").await,
            "alerts",
            "id"
        )
        .len(),
        1
    );
    assert_eq!(
        console.get("/alerts?state=closed", Some(READ)).await.0,
        StatusCode::BAD_REQUEST
    );

    let shown = console.json(&format!("/alerts/{id}")).await;
    assert_eq!(shown["incident"]["state"], "open");
    assert_eq!(shown["incident"]["concerned"][0]["kind"], "event");
    assert_eq!(shown["history"][0]["action"], "opened");
    assert_eq!(shown["messages"][0]["channel"], "email");
    assert_eq!(shown["messages"][0]["to"], "oncall@example.com");
    assert_eq!(
        console.get("/alerts/alr_nope", Some(READ)).await.0,
        StatusCode::NOT_FOUND
    );

    let overview = console.json("/overview").await;
    assert_eq!(overview["open_alerts"][0]["id"], id.as_str());

    let ack = format!("/alerts/{id}/acknowledge");
    let (status, _) = console.post(&ack, READ, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        db.count("alert_incidents WHERE acknowledged_at IS NOT NULL")
            .await,
        0
    );
    let (status, body) = console.post(&ack, OPERATE, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], true);
    let (_, body) = console.post(&ack, OPERATE, json!({})).await;
    assert_eq!(body["changed"], false);
    let (status, _) = console
        .post("/alerts/alr_nope/acknowledge", OPERATE, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        console.json("/overview").await["open_alerts"][0]["acknowledged_by"],
        "ops"
    );
    assert_eq!(
        db.count("audit_log WHERE entity = 'alert_incident' AND actor = 'ops'")
            .await,
        1
    );

    // Resolved: acknowledging it is a conflict, and the overview has none open.
    sqlx::query("DELETE FROM job_failures")
        .execute(&db.pool)
        .await
        .expect("clear");
    alerts.evaluate(Utc::now()).await.expect("evaluate");
    let (status, body) = console.post(&ack, OPERATE, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(console.json("/overview").await["open_alerts"], json!([]));
    console.stop().await;
}

#[tokio::test]
async fn the_pages_show_open_incidents_and_acknowledge_one_with_the_form() {
    let db = TestDatabase::new().await;
    let (_, id) = an_open_incident(&db).await;
    let console = Console::start(&db.pool).await;

    let mut reader = Pages::new(console.port);
    assert_eq!(reader.login(READ).await.status, StatusCode::SEE_OTHER);
    let overview = reader.get("/").await.body;
    assert!(
        overview.contains(&format!("href=\"/alerts/{id}\"")),
        "{overview}"
    );
    assert!(
        !overview.contains("/acknowledge"),
        "a reader has no form: {overview}"
    );
    let page = reader.get(&format!("/alerts/{id}")).await.body;
    assert!(page.contains("6 in the last 1h (alert above 5)"), "{page}");
    assert!(!page.contains("id=\"acknowledge\""), "{page}");

    let mut operator = Pages::new(console.port);
    assert_eq!(operator.login(OPERATE).await.status, StatusCode::SEE_OTHER);
    assert!(
        operator
            .get("/")
            .await
            .body
            .contains(&format!("action=\"/alerts/{id}/acknowledge\""))
    );
    let page = operator.get(&format!("/alerts/{id}")).await.body;
    assert!(page.contains("id=\"acknowledge\""), "{page}");
    let csrf = operator.csrf(&format!("/alerts/{id}")).await;
    let refused = operator
        .post(
            &format!("/alerts/{id}/acknowledge"),
            &[("csrf", "forged")],
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        db.count("alert_incidents WHERE acknowledged_at IS NOT NULL")
            .await,
        0
    );
    let done = operator
        .post(
            &format!("/alerts/{id}/acknowledge"),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("Acknowledged by ops"), "{}", done.body);
    assert!(!done.body.contains("id=\"acknowledge\""), "{}", done.body);
    let list = operator.get("/alerts?state=open").await.body;
    assert!(list.contains(&id), "{list}");
    console.stop().await;
}
