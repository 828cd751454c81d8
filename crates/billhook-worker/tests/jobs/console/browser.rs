//! The console in a real browser (headless Chromium over WebDriver): an operator logs in,
//! filters the events, opens one and reads its payload, requeues a dead letter and sees its
//! status change, and logs out. The same run saves the screenshots docs/console.md shows
//! (into `BILLHOOK_SCREENSHOTS_DIR` when set: scripts/console-screenshots.sh).

use std::path::PathBuf;

use billhook_testkit::browser::Browser;
use billhook_testkit::worker::run_due_jobs;

use super::harness::{Console, OPERATE};
use super::pages::two_dead_events;
use super::records::tell_stories;

/// Where the screenshots go: the docs when the script asks, a scratch folder otherwise (they
/// are checked either way).
fn screenshots() -> PathBuf {
    let dir = std::env::var_os("BILLHOOK_SCREENSHOTS_DIR").map_or_else(
        || std::env::temp_dir().join(format!("billhook-screens-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("a screenshot folder");
    dir
}

fn assert_png(path: &std::path::Path) {
    let bytes = std::fs::read(path).expect("the screenshot");
    assert!(
        bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG of a page",
        path.display()
    );
}

#[tokio::test]
async fn an_operator_finds_a_failed_event_requeues_it_and_logs_out_in_a_real_browser() {
    let (app, worker) = two_dead_events().await;
    tell_stories(&app.db.pool).await;
    // Spread the day's applied events over the last hours, so the chart has a shape.
    sqlx::query(
        "UPDATE webhook_events e SET received_at = s.at, applied_at = s.at + interval '400 ms' \
           FROM (SELECT id, now() - random() * interval '20 hours' AS at FROM webhook_events \
                  WHERE status = 'applied') s WHERE e.id = s.id",
    )
    .execute(&app.db.pool)
    .await
    .expect("spread");
    let console = Console::start(&app.db.pool).await;
    let base = format!("http://127.0.0.1:{}", console.port);
    let shots = screenshots();
    let browser = Browser::start().await;

    // Log in: a page asked for without a session leads to the login form, then back.
    browser.goto(&format!("{base}/events")).await;
    browser.find("#token").await;
    browser
        .fill("#token", "not-the-right-token-at-all-0000")
        .await;
    browser.click("#login").await;
    browser
        .wait_for_text("#login-error", "not one of this console's tokens")
        .await;
    browser.fill("#token", OPERATE).await;
    browser.click("#login").await;
    browser.wait_for_text("#who", "ops · operate").await;
    assert!(
        browser.url().await.ends_with("/events"),
        "back to the page asked for"
    );
    assert!(
        !browser.source().await.contains(OPERATE),
        "the token is nowhere on the page"
    );

    // The overview.
    browser.goto(&format!("{base}/")).await;
    browser.find("#chart .uplot").await;
    browser.wait_for_text("#dead-total", "2").await;
    browser
        .screenshot(&shots.join("console-overview.png"))
        .await;

    // Filter the events: htmx swaps the list in place and the address follows.
    browser.goto(&format!("{base}/events")).await;
    browser.fill("#f-type", "customer.created").await;
    browser.select("#f-status", "dead").await;
    browser.click("#apply").await;
    browser.wait_for_text("#results", "customer.created").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = browser.texts("#results .event-row").await;
        if rows.len() == 2 && rows.iter().all(|r| r.contains("dead")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two dead events: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        browser.url().await.contains("status=dead"),
        "{}",
        browser.url().await
    );

    // Open one: its payload, its failed attempts.
    browser.click("#results .event-link").await;
    browser
        .wait_for_text("#payload", "\"object\": \"customer\"")
        .await;
    browser.wait_for_text("#event-status", "dead").await;
    browser.find("#failures").await;
    browser.screenshot(&shots.join("console-event.png")).await;

    // Requeue one dead letter from its row, with a reason; see it change.
    browser.goto(&format!("{base}/dead-letters")).await;
    browser.find(".dead-row").await;
    browser
        .screenshot(&shots.join("console-dead-letters.png"))
        .await;
    browser.fill(".dead-row .reason", "database fixed").await;
    browser.click(".dead-row .requeue").await;
    browser
        .wait_for_text("#notice", "Requeued 1 dead letter")
        .await;
    browser.goto(&format!("{base}/dead-letters?all=true")).await;
    browser.wait_for_text("#results", "requeued").await;
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db.count("webhook_events WHERE status = 'dead'").await,
        1
    );
    assert_eq!(
        app.db
            .count("audit_log WHERE entity = 'dead_letter' AND actor = 'ops' AND detail->>'reason' = 'database fixed'")
            .await,
        1
    );
    let requeued_event: String =
        sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE requeued_at IS NOT NULL")
            .fetch_one(&app.db.pool)
            .await
            .expect("the requeued one");
    browser
        .goto(&format!("{base}/events/{requeued_event}"))
        .await;
    browser.wait_for_text("#event-status", "applied").await;

    // Log out: the session is gone.
    browser.click("#logout").await;
    browser.find("#token").await;
    browser.goto(&format!("{base}/events")).await;
    browser.find("#token").await;
    browser.close().await;

    for name in [
        "console-overview.png",
        "console-event.png",
        "console-dead-letters.png",
    ] {
        assert_png(&shots.join(name));
    }
    console.stop().await;
    worker.stop().await.expect("worker stops");
}
