//! An incident's lifecycle at moved clocks: one incident per firing, one reminder per period
//! (none once acknowledged), one resolution after the rule stayed clear, and two evaluations
//! at once still notify once.

use billhook_testkit::TestDatabase;
use billhook_worker::alerts::Tick;
use billhook_worker::alerts::incident::{self, AckError, Action};
use billhook_worker::alerts::settings::{AlertSettings, CountRule};
use chrono::Utc;
use std::time::Duration;

use super::{alerts, event_failures, minutes, quiet};

fn settings() -> AlertSettings {
    AlertSettings {
        event_failures: CountRule::Above {
            count: 5,
            window: Duration::from_secs(24 * 3600),
        },
        remind: Duration::from_secs(4 * 3600),
        resolve_after: Duration::from_secs(600),
        email: vec!["ops@example.com".into(), "cto@example.com".into()],
        ..quiet()
    }
}

async fn history(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM alert_history ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("history")
}

#[tokio::test]
async fn an_incident_opens_once_reminds_once_per_period_and_resolves_once() {
    let db = TestDatabase::new().await;
    let alerts = alerts(&db.pool, settings());
    let t0 = Utc::now();
    event_failures(&db.pool, 6, t0 - minutes(1)).await;

    let actions = |e: billhook_worker::alerts::Evaluation| -> Vec<Action> {
        e.transitions.into_iter().map(|(_, t)| t.action).collect()
    };
    assert_eq!(
        actions(alerts.evaluate(t0).await.expect("eval")),
        [Action::Opened]
    );
    assert_eq!(db.count("alert_incidents WHERE state = 'open'").await, 1);
    // One email per address, keyed on the transition.
    assert_eq!(db.count("emails WHERE template = 'alert'").await, 2);
    for minute in 1..5 {
        assert!(actions(alerts.evaluate(t0 + minutes(minute)).await.expect("eval")).is_empty());
    }
    // Still firing four hours on: one reminder, then none until the next period.
    assert_eq!(
        actions(alerts.evaluate(t0 + minutes(240)).await.expect("eval")),
        [Action::Reminded]
    );
    assert!(actions(alerts.evaluate(t0 + minutes(241)).await.expect("eval")).is_empty());
    assert!(actions(alerts.evaluate(t0 + minutes(479)).await.expect("eval")).is_empty());
    assert_eq!(
        actions(alerts.evaluate(t0 + minutes(480)).await.expect("eval")),
        [Action::Reminded]
    );
    assert_eq!(db.count("emails WHERE template = 'alert'").await, 6);

    // Acknowledged: no more reminders, but it still resolves.
    let id: String = sqlx::query_scalar("SELECT id FROM alert_incidents")
        .fetch_one(&db.pool)
        .await
        .expect("id");
    assert!(
        incident::acknowledge(&db.pool, &id, "ops-team")
            .await
            .expect("ack")
    );
    assert!(
        !incident::acknowledge(&db.pool, &id, "ops-team")
            .await
            .expect("again")
    );
    assert!(matches!(
        incident::acknowledge(&db.pool, "alr_nope", "x").await,
        Err(AckError::NotFound(_))
    ));
    assert!(actions(alerts.evaluate(t0 + minutes(720)).await.expect("eval")).is_empty());
    assert_eq!(
        db.count("audit_log WHERE entity = 'alert_incident' AND action = 'acknowledged' AND actor = 'ops-team'")
            .await,
        1
    );

    // The failures leave the 24 h window at t0 + 23h59m: clear, then resolved 10 min later.
    let clear = t0 + minutes(24 * 60);
    assert!(actions(alerts.evaluate(clear).await.expect("eval")).is_empty());
    assert!(actions(alerts.evaluate(clear + minutes(9)).await.expect("eval")).is_empty());
    assert_eq!(
        actions(alerts.evaluate(clear + minutes(10)).await.expect("eval")),
        [Action::Resolved]
    );
    assert!(actions(alerts.evaluate(clear + minutes(11)).await.expect("eval")).is_empty());
    assert_eq!(
        history(&db.pool).await,
        ["opened", "reminded", "reminded", "acknowledged", "resolved"]
    );
    assert_eq!(
        db.count("alert_incidents WHERE state = 'resolved'").await,
        1
    );
    // opened, two reminders, resolved: to each of two addresses.
    assert_eq!(db.count("emails WHERE template = 'alert'").await, 8);
    let resolved: serde_json::Value = sqlx::query_scalar(
        "SELECT data FROM emails WHERE template = 'alert' ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("data");
    assert_eq!(resolved["action"], "resolved");
    assert!(matches!(
        incident::acknowledge(&db.pool, &id, "late").await,
        Err(AckError::Resolved(_))
    ));

    // A new firing is a new incident.
    event_failures(&db.pool, 6, clear + minutes(30)).await;
    assert_eq!(
        actions(alerts.evaluate(clear + minutes(31)).await.expect("eval")),
        [Action::Opened]
    );
    assert_eq!(db.count("alert_incidents").await, 2);
}

#[tokio::test]
async fn a_rule_that_flaps_back_before_resolve_after_keeps_its_incident() {
    let db = TestDatabase::new().await;
    let mut settings = settings();
    settings.event_failures = CountRule::Above {
        count: 5,
        window: Duration::from_secs(3600),
    };
    let alerts = alerts(&db.pool, settings);
    let t0 = Utc::now();
    event_failures(&db.pool, 6, t0).await;
    alerts.evaluate(t0).await.expect("eval");
    // Clear at t0+61m, firing again at t0+65m (before resolve_after ran out).
    assert!(
        alerts
            .evaluate(t0 + minutes(61))
            .await
            .expect("eval")
            .transitions
            .is_empty()
    );
    event_failures(&db.pool, 6, t0 + minutes(65)).await;
    assert!(
        alerts
            .evaluate(t0 + minutes(66))
            .await
            .expect("eval")
            .transitions
            .is_empty()
    );
    assert!(
        alerts
            .evaluate(t0 + minutes(72))
            .await
            .expect("eval")
            .transitions
            .is_empty()
    );
    assert_eq!(history(&db.pool).await, ["opened"]);
    // Clear again from t0+125m; the first clear evaluation (t0+130m) starts the 10 minutes.
    for at in [130, 139] {
        let t = alerts.evaluate(t0 + minutes(at)).await.expect("eval");
        assert!(t.transitions.is_empty(), "t0+{at}m");
    }
    let resolved = alerts
        .evaluate(t0 + minutes(140))
        .await
        .expect("eval")
        .transitions;
    assert_eq!(resolved.len(), 1);
    assert_eq!(history(&db.pool).await, ["opened", "resolved"]);
}

#[tokio::test]
async fn a_rule_turned_off_resolves_its_incident() {
    let db = TestDatabase::new().await;
    let t0 = Utc::now();
    event_failures(&db.pool, 6, t0).await;
    alerts(&db.pool, settings())
        .evaluate(t0)
        .await
        .expect("eval");
    let off = alerts(
        &db.pool,
        AlertSettings {
            resolve_after: Duration::ZERO,
            ..settings()
        },
    );
    let mut off_settings = off.channels.settings.clone();
    off_settings.event_failures = CountRule::Off;
    let off = alerts(&db.pool, off_settings);
    let t = off
        .evaluate(t0 + minutes(1))
        .await
        .expect("eval")
        .transitions;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].1.action, Action::Resolved);
}

#[tokio::test]
async fn two_evaluations_at_once_notify_once() {
    let db = TestDatabase::new().await;
    let now = Utc::now();
    event_failures(&db.pool, 6, now).await;
    let a = alerts(&db.pool, settings());
    let b = alerts(&db.pool, settings());
    for round in 0..5 {
        let at = now + minutes(round);
        let (x, y) = tokio::join!(a.tick(at), b.tick(at));
        let evaluated = [x.expect("tick"), y.expect("tick")]
            .into_iter()
            .filter(|t| matches!(t, Tick::Evaluated(_)))
            .count();
        assert_eq!(evaluated, 1, "round {round}: one of the two evaluates");
    }
    // Within the interval (1 min) of the last evaluation: nobody evaluates.
    let at = now + minutes(4) + chrono::Duration::seconds(20);
    let (x, y) = tokio::join!(a.tick(at), b.tick(at));
    assert!(matches!(x.expect("tick"), Tick::Skipped(_)));
    assert!(matches!(y.expect("tick"), Tick::Skipped(_)));
    assert_eq!(db.count("alert_incidents").await, 1);
    assert_eq!(history(&db.pool).await, ["opened"]);
    assert_eq!(db.count("emails WHERE template = 'alert'").await, 2);
}
