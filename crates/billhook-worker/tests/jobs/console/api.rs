//! The console's JSON API: tokens, event filters, keyset pages, an event's page, and requeue
//! through the worker's own code.

use billhook_console::ConsoleSettings;
use billhook_console::tokens::Tokens;
use billhook_testkit::worker::run_due_jobs;
use billhook_testkit::{TestReceiver, TestWorker};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::{Console, OPERATE, READ, customer_event, ids};
use crate::processing::{fail_customer_writes, heal_customer_writes};

#[tokio::test]
async fn the_api_answers_only_with_a_token_and_a_read_token_cannot_act() {
    let app = TestReceiver::spawn().await;
    let console = Console::start(&app.db.pool).await;

    let (status, body) = console.get("/events", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    let (status, _) = console
        .get("/events", Some("not-a-token-at-all-0123456789"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = console.get("/dead-letters", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for token in [READ, OPERATE] {
        let (status, body) = console.get("/events", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = console.get("/dead-letters", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = console
        .post(
            "/dead-letters/requeue",
            READ,
            json!({ "reason": "try", "dry_run": true }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = console.get("/nothing-here", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = console
        .post("/dead-letters/requeue", OPERATE, json!({ "reason": 5 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    console.stop().await;
}

#[tokio::test]
async fn events_are_filtered_and_a_page_stays_stable_while_new_events_arrive() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    for n in 0..5 {
        assert_eq!(
            app.deliver(&customer_event(n, "customer.created"))
                .await
                .status(),
            200
        );
    }
    for n in 5..7 {
        assert_eq!(
            app.deliver(&customer_event(n, "customer.updated"))
                .await
                .status(),
            200
        );
    }
    run_due_jobs(&app.db.pool).await;
    let console = Console::start(&app.db.pool).await;

    let all = ids(&console.json("/events").await, "events", "id");
    assert_eq!(all.len(), 7);
    let updated = console.json("/events?type=customer.updated").await;
    assert_eq!(
        ids(&updated, "events", "id"),
        all[..2].to_vec(),
        "newest first"
    );
    assert_eq!(
        ids(
            &console.json("/events?status=applied").await,
            "events",
            "id"
        )
        .len(),
        7
    );
    assert!(ids(&console.json("/events?status=dead").await, "events", "id").is_empty());
    let one = console.json(&format!("/events?id={}", all[3])).await;
    assert_eq!(ids(&one, "events", "id"), vec![all[3].clone()]);
    let object = console.json("/events?object=cus_console002").await;
    assert_eq!(ids(&object, "events", "object_id"), vec!["cus_console002"]);
    let later = console.json("/events?since=2999-01-01T00:00:00Z").await;
    assert!(ids(&later, "events", "id").is_empty());
    for bad in [
        "/events?status=nope",
        "/events?limit=0",
        "/events?limit=500",
        "/events?cursor=zzz",
        "/events?since=yesterday",
    ] {
        let (status, body) = console.get(bad, Some(READ)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    // Pages of three; three more events arrive between the first page and the next ones.
    let first = console.json("/events?limit=3").await;
    let mut seen = ids(&first, "events", "id");
    for n in 7..10 {
        assert_eq!(
            app.deliver(&customer_event(n, "customer.created"))
                .await
                .status(),
            200
        );
    }
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = console.json(&format!("/events?limit=3&cursor={c}")).await;
        seen.extend(ids(&page, "events", "id"));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        seen, all,
        "every event of the first listing once, in order, none of the new"
    );
    assert_eq!(
        ids(&console.json("/events").await, "events", "id").len(),
        10
    );
    console.stop().await;
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn an_event_shows_its_payload_and_what_it_caused_but_not_its_signature() {
    let app = TestReceiver::spawn().await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    let event = customer_event(1, "customer.created");
    assert_eq!(app.deliver(&event).await.status(), 200);
    run_due_jobs(&app.db.pool).await;
    let console = Console::start(&app.db.pool).await;
    let id = event["id"].as_str().expect("id");

    let (status, body) = console.get(&format!("/events/{id}"), Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shown: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(shown["payload"]["data"]["object"]["id"], "cus_console001");
    assert_eq!(shown["status"], "applied");
    assert_eq!(shown["origin"], "webhook");
    assert_eq!(shown["secret_label"], "primary");
    assert!(shown["headers"].get("content-type").is_some(), "{body}");
    assert!(shown["headers"].get("stripe-signature").is_none(), "{body}");
    assert!(!body.contains("v1="), "no signature anywhere: {body}");
    assert!(!body.contains("whsec_"), "no secret anywhere: {body}");
    let audit = shown["audit"].as_array().expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a["entity"] == "customer" && a["action"] == "upserted"),
        "{audit:?}"
    );
    let (status, _) = console.get("/events/evt_missing", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    console.stop().await;
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn a_requeue_through_the_api_shows_its_count_first_then_applies_the_event_once() {
    let app = TestReceiver::spawn_with(|s| s.process_event_max_attempts = 2).await;
    fail_customer_writes(&app.db.pool, 1_000).await;
    let worker = TestWorker::spawn(&app.db.pool).await;
    for n in 0..2 {
        assert_eq!(
            app.deliver(&customer_event(n, "customer.created"))
                .await
                .status(),
            200
        );
    }
    run_due_jobs(&app.db.pool).await;
    assert_eq!(app.db.count("dead_letters").await, 2);
    heal_customer_writes(&app.db.pool).await;
    let console = Console::start(&app.db.pool).await;

    let letters = console.json("/dead-letters?kind=process_event").await;
    assert_eq!(ids(&letters, "dead_letters", "job_id").len(), 2);
    let (status, preview) = console
        .post(
            "/dead-letters/requeue",
            OPERATE,
            json!({ "kind": "process_event", "dry_run": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["count"], 2);
    assert_eq!(
        app.db.count("dead_letters WHERE requeued_at IS NULL").await,
        2,
        "a preview changes nothing"
    );
    let (status, refused) = console
        .post(
            "/dead-letters/requeue",
            OPERATE,
            json!({ "kind": "process_event" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a reason is required: {refused}"
    );

    let (status, done) = console
        .post(
            "/dead-letters/requeue",
            OPERATE,
            json!({ "kind": "process_event", "reason": "database fixed" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["count"], 2);
    run_due_jobs(&app.db.pool).await;

    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        2
    );
    assert_eq!(
        app.db.count("customers WHERE id LIKE 'cus_console%'").await,
        2
    );
    assert_eq!(
        app.db
            .count("audit_log WHERE entity = 'dead_letter' AND action = 'requeued' AND actor = 'ops' AND detail->>'reason' = 'database fixed'")
            .await,
        2
    );
    let (_, again) = console
        .post(
            "/dead-letters/requeue",
            OPERATE,
            json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(again["count"], 0, "nothing is requeued twice");
    let open = console.json("/dead-letters").await;
    assert!(ids(&open, "dead_letters", "job_id").is_empty());
    let all = console.json("/dead-letters?all=true").await;
    assert_eq!(ids(&all, "dead_letters", "job_id").len(), 2);
    console.stop().await;
    worker.stop().await.expect("worker stops");
}

#[tokio::test]
async fn the_console_will_not_start_open_on_an_outside_address() {
    let app = TestReceiver::spawn().await;
    let open = ConsoleSettings {
        listen: "0.0.0.0:0".to_owned(),
        tokens: None,
    };
    let error = billhook_worker::console::build(&app.db.pool, &open)
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("BILLHOOK_CONSOLE_TOKENS"),
        "{error:#}"
    );
    let guarded = ConsoleSettings {
        tokens: Some(Tokens::parse(&format!("ops=operate:{OPERATE}")).expect("tokens")),
        ..open
    };
    assert!(billhook_worker::console::build(&app.db.pool, &guarded).is_ok());
    let local = ConsoleSettings {
        listen: "127.0.0.1:0".to_owned(),
        tokens: None,
    };
    assert!(billhook_worker::console::build(&app.db.pool, &local).is_ok());
}
