//! The console's pages over HTTP: logging in (cookie flags, throttling), what a page shows and
//! never shows, CSRF and roles on every acting form, requeue and replay through the pages, and
//! `billhook-worker run` serving the console.

use billhook_testkit::worker::run_due_jobs;
use billhook_testkit::{TestReceiver, TestWorker};
use reqwest::StatusCode;

use super::harness::{Console, OPERATE, Pages, READ, customer_event};
use crate::processing::{fail_customer_writes, heal_customer_writes};

/// A receiver and worker with two dead-lettered customer events (cus_console000, …001).
pub(super) async fn two_dead_events() -> (TestReceiver, TestWorker) {
    let app = TestReceiver::spawn_with(|s| s.process_event_max_attempts = 2).await;
    fail_customer_writes(&app.db.pool, 1_000).await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    for n in 0..2 {
        let status = app
            .deliver(&customer_event(n, "customer.created"))
            .await
            .status();
        assert_eq!(status, 200);
    }
    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 2);
    heal_customer_writes(&app.db.pool).await;
    (app, worker)
}

#[tokio::test]
async fn a_page_needs_a_login_and_the_session_cookie_is_locked_down() {
    let app = TestReceiver::spawn().await;
    assert_eq!(
        app.deliver(&customer_event(1, "customer.created"))
            .await
            .status(),
        200
    );
    let console = Console::start(&app.db.pool).await;
    let mut pages = Pages::new(console.port);

    let away = pages.get("/events?status=received").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(
        away.location.as_deref(),
        Some("/login?next=%2Fevents%3Fstatus%3Dreceived")
    );
    let form = pages.get("/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("id=\"token\""), "{}", form.body);

    let refused = pages.login("not-a-token-of-this-console-at-all").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.set_cookie.is_none());
    assert!(!refused.body.contains("not-a-token-of-this-console"));
    assert!(pages.cookie.is_none());

    let welcome = pages.login(READ).await;
    assert_eq!(welcome.status, StatusCode::SEE_OTHER);
    assert_eq!(welcome.location.as_deref(), Some("/events"));
    let set = welcome.set_cookie.expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!set.contains(READ) && !set.contains(OPERATE), "{set}");

    let events = pages.get("/events").await;
    assert_eq!(events.status, StatusCode::OK);
    assert!(events.body.contains("cus_console001") || events.body.contains("customer.created"));
    assert!(events.body.contains("dash · read"), "who is logged in");
    for page in ["/events", "/dead-letters", "/login"] {
        let body = pages.get(page).await.body;
        assert!(!body.contains(READ) && !body.contains(OPERATE), "{page}");
    }

    // Behind a proxy that says the browser spoke TLS, the cookie is Secure.
    let behind_tls = pages
        .post(
            "/login",
            &[("token", OPERATE)],
            &[("X-Forwarded-Proto", "https")],
        )
        .await;
    assert!(
        behind_tls
            .set_cookie
            .as_deref()
            .is_some_and(|c| c.contains("Secure")),
        "{:?}",
        behind_tls.set_cookie
    );

    // A cookie that was tampered with is no session.
    let mut forged = Pages::new(console.port);
    forged.cookie = pages.cookie.as_ref().map(|c| c.replace('.', ".x"));
    assert_eq!(forged.get("/events").await.status, StatusCode::SEE_OTHER);

    let csrf = pages.csrf("/events").await;
    let out = pages.post("/logout", &[("csrf", &csrf)], &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.set_cookie
            .as_deref()
            .is_some_and(|c| c.contains("Max-Age=0")),
        "{:?}",
        out.set_cookie
    );
    console.stop().await;
}

#[tokio::test]
async fn failed_logins_are_throttled() {
    let app = TestReceiver::spawn().await;
    let console = Console::start(&app.db.pool).await;
    let mut pages = Pages::new(console.port);
    for _ in 0..5 {
        let answer = pages.login("wrong-token-wrong-token-wrong").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let held = pages.login("wrong-token-wrong-token-wrong").await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(held.body.contains("Too many login attempts"));
    let held = pages.login(OPERATE).await;
    assert_eq!(
        held.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right token waits: the throttle comes before the check"
    );
    console.stop().await;
}

#[tokio::test]
async fn an_acting_form_needs_this_sessions_csrf_token_this_origin_and_an_operate_token() {
    let (app, worker) = two_dead_events().await;
    let console = Console::start(&app.db.pool).await;
    let mut operator = Pages::new(console.port);
    assert_eq!(operator.login(OPERATE).await.status, StatusCode::SEE_OTHER);
    let csrf = operator.csrf("/dead-letters").await;
    let job: String = sqlx::query_scalar("SELECT job_id FROM dead_letters LIMIT 1")
        .fetch_one(&app.db.pool)
        .await
        .expect("a dead letter");

    for (csrf_sent, headers, why) in [
        ("", vec![], "no CSRF token"),
        ("forged", vec![], "a wrong CSRF token"),
        (
            csrf.as_str(),
            vec![("Origin", "https://evil.example")],
            "another site's form",
        ),
    ] {
        let answer = operator
            .post(
                "/dead-letters/requeue",
                &[
                    ("csrf", csrf_sent),
                    ("job_ids", &job),
                    ("reason", "because"),
                ],
                &headers,
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{why}");
        assert_eq!(
            app.db
                .count("dead_letters WHERE requeued_at IS NOT NULL")
                .await,
            0,
            "{why} changes nothing"
        );
    }
    // Another session's token is no good either.
    let mut reader = Pages::new(console.port);
    assert_eq!(reader.login(READ).await.status, StatusCode::SEE_OTHER);
    let reader_csrf = reader.csrf("/dead-letters").await;
    assert_ne!(reader_csrf, csrf);
    let answer = operator
        .post(
            "/dead-letters/requeue",
            &[("csrf", &reader_csrf), ("job_ids", &job), ("reason", "x")],
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // A read session has no requeue form and may not post one.
    let page = reader.get("/dead-letters").await.body;
    assert!(!page.contains("class=\"requeue\""), "{page}");
    let answer = reader
        .post(
            "/dead-letters/requeue",
            &[("csrf", &reader_csrf), ("job_ids", &job), ("reason", "x")],
            &[("Origin", &reader.base.clone())],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.db
            .count("dead_letters WHERE requeued_at IS NOT NULL")
            .await,
        0
    );
    console.stop().await;
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn dead_letters_are_requeued_from_the_pages_one_or_all_after_seeing_the_count() {
    let (app, worker) = two_dead_events().await;
    let console = Console::start(&app.db.pool).await;
    let mut pages = Pages::new(console.port);
    pages.login(OPERATE).await;
    let listed = pages.get("/dead-letters?kind=process_event").await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.matches("class=\"dead-row\"").count(), 2);
    let csrf = pages.csrf("/dead-letters").await;
    let jobs: Vec<String> =
        sqlx::query_scalar("SELECT job_id FROM dead_letters ORDER BY dead_at, job_id")
            .fetch_all(&app.db.pool)
            .await
            .expect("dead letters");

    let no_reason = pages
        .post(
            "/dead-letters/requeue",
            &[("csrf", &csrf), ("job_ids", &jobs[0]), ("reason", " ")],
            &[],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);

    let one = pages
        .post(
            "/dead-letters/requeue",
            &[
                ("csrf", &csrf),
                ("job_ids", &jobs[0]),
                ("reason", "one fixed"),
            ],
            &[],
        )
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.contains("Requeued 1 dead letter"), "{}", one.body);
    assert_eq!(
        app.db
            .count("dead_letters WHERE requeued_at IS NOT NULL")
            .await,
        1
    );

    let confirm = pages
        .post(
            "/dead-letters/requeue",
            &[
                ("csrf", &csrf),
                ("kind", "process_event"),
                ("reason", "the rest"),
            ],
            &[],
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm
            .body
            .contains("This requeues <strong>1</strong> dead letter"),
        "{}",
        confirm.body
    );
    assert_eq!(
        app.db
            .count("dead_letters WHERE requeued_at IS NOT NULL")
            .await,
        1,
        "the count page changes nothing"
    );
    let done = pages
        .post(
            "/dead-letters/requeue",
            &[
                ("csrf", &csrf),
                ("kind", "process_event"),
                ("reason", "the rest"),
                ("job_ids", &jobs[1]),
                ("confirmed", "true"),
            ],
            &[],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    run_due_jobs(&app.db.pool).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        2
    );
    assert_eq!(
        app.db
            .count("audit_log WHERE entity = 'dead_letter' AND actor = 'ops'")
            .await,
        2
    );
    console.stop().await;
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn a_failed_event_is_replayed_from_its_page_and_applied_once() {
    let (app, worker) = two_dead_events().await;
    let console = Console::start(&app.db.pool).await;
    let mut pages = Pages::new(console.port);
    pages.login(OPERATE).await;
    let id: String =
        sqlx::query_scalar("SELECT id FROM webhook_events WHERE status = 'dead' LIMIT 1")
            .fetch_one(&app.db.pool)
            .await
            .expect("a dead event");
    let page = pages.get(&format!("/events/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"replay\""), "a replay form");
    assert!(page.body.contains("id=\"failures\""), "its failed attempts");
    let payload = page
        .body
        .split("id=\"payload\">")
        .nth(1)
        .expect("the payload");
    assert!(
        payload.starts_with('{') && payload.contains("cus_console00"),
        "{payload}"
    );
    assert!(
        !page.body.contains("stripe-signature"),
        "no signature header"
    );
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM job_failures WHERE event_id = $1")
        .bind(&id)
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(failures, 2, "each attempt is recorded against its event");
    let csrf = pages.csrf(&format!("/events/{id}")).await;
    let replayed = pages
        .post(
            &format!("/events/{id}/replay"),
            &[("csrf", &csrf), ("reason", "database fixed")],
            &[],
        )
        .await;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.body);
    assert!(replayed.body.contains("Replayed"));
    run_due_jobs(&app.db.pool).await;
    let status: String = sqlx::query_scalar("SELECT status FROM webhook_events WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.db.pool)
        .await
        .expect("status");
    assert_eq!(status, "applied");
    // Applied now: no second replay.
    let again = pages
        .post(
            &format!("/events/{id}/replay"),
            &[("csrf", &csrf), ("reason", "again")],
            &[],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        app.db
            .count("audit_log WHERE entity = 'dead_letter' AND action = 'requeued'")
            .await,
        1
    );
    console.stop().await;
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn the_worker_serves_the_console_and_without_tokens_on_loopback_logs_in_as_local() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let address = worker
        .console_address
        .clone()
        .expect("run serves a console");
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let mut pages = Pages::new(port);
    let login = pages.get("/login?next=/dead-letters").await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.location.as_deref(), Some("/dead-letters"));
    pages.cookie = login
        .set_cookie
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    let page = pages.get("/dead-letters").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("local · operate"));
    // An open redirect is refused: after login, only this console's paths.
    let elsewhere = pages.get("/login?next=//evil.example/").await;
    assert_eq!(elsewhere.location.as_deref(), Some("/"));
    worker.stop().await.expect("worker stops");
}
