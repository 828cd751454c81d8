//! The console's notices to the host application: the list's filters and keyset pages over
//! notices written directly, and a notice the worker dead-lettered (nothing listens at the
//! application's URL) shown with its body, attempts, error and dead letter.

use std::net::TcpListener;

use billhook_testkit::worker::{run_due_jobs, settings_with_notify};
use billhook_testkit::{TestDatabase, TestWorker};
use billhook_worker::notify::{Notice, Outbox};
use reqwest::StatusCode;
use serde_json::json;

use super::dunning::{every_page, read};
use super::harness::{Console, READ, ids};

/// Five notices, newest last: two at the same instant (the keyset's id breaks the tie).
async fn five_notices(db: &TestDatabase) {
    sqlx::query(
        "INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status, attempts, last_status, created_at) \
         VALUES ('ntf_a', 'order.paid',           'k_a', 'evt_1', '{\"type\": \"order.paid\"}',           'delivered', 1, 204,  now() - interval '5 hours'), \
                ('ntf_b', 'order.refunded',       'k_b', 'evt_2', '{\"type\": \"order.refunded\"}',       'pending',   2, 500,  now() - interval '4 hours'), \
                ('ntf_c', 'order.paid',           'k_c', 'evt_2', '{\"type\": \"order.paid\"}',           'dead',      5, 500,  now() - interval '3 hours'), \
                ('ntf_d', 'subscription.updated', 'k_d', 'evt_3', '{\"type\": \"subscription.updated\"}', 'skipped',   0, NULL, now() - interval '2 hours'), \
                ('ntf_e', 'order.paid',           'k_e', 'evt_4', '{\"type\": \"order.paid\"}',           'pending',   0, NULL, now() - interval '1 hour')",
    )
    .execute(&db.pool)
    .await
    .expect("notices");
    sqlx::query("UPDATE app_notifications SET created_at = (SELECT created_at FROM app_notifications WHERE id = 'ntf_c') WHERE id = 'ntf_d'")
        .execute(&db.pool)
        .await
        .expect("a tie");
}

#[tokio::test]
async fn notices_are_filtered_by_status_type_and_event_and_paged() {
    let db = TestDatabase::new().await;
    five_notices(&db).await;
    let console = Console::start(&db.pool).await;

    let all = read(&console, "/notices").await;
    let newest_first = ["ntf_e", "ntf_d", "ntf_c", "ntf_b", "ntf_a"];
    assert_eq!(ids(&all, "notices", "id"), newest_first);
    for (filter, expected) in [
        ("status=pending", &["ntf_e", "ntf_b"][..]),
        ("status=delivered", &["ntf_a"]),
        ("status=dead", &["ntf_c"]),
        ("type=order.paid", &["ntf_e", "ntf_c", "ntf_a"]),
        ("type=order.cancelled", &[]),
        ("event=evt_2", &["ntf_c", "ntf_b"]),
        ("status=pending&type=order.paid", &["ntf_e"]),
        ("type=order.paid&event=evt_2", &["ntf_c"]),
        ("status=&type=", &newest_first),
    ] {
        let page = read(&console, &format!("/notices?{filter}")).await;
        assert_eq!(ids(&page, "notices", "id"), expected, "{filter}");
    }
    assert_eq!(
        every_page(&console, "/notices", "notices").await,
        newest_first,
        "pages of two hold every notice once, the tie included"
    );
    assert_eq!(
        every_page(&console, "/notices?type=order.paid", "notices").await,
        ["ntf_e", "ntf_c", "ntf_a"]
    );

    let (status, body) = console.get("/notices?status=sent", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("pending, delivered, skipped, dead"), "{body}");
    let (status, _) = console.get("/notices?limit=500", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = console.get("/notices/ntf_nope", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    console.stop().await;
}

#[tokio::test]
async fn a_dead_notice_shows_its_body_attempts_error_and_dead_letter() {
    let db = TestDatabase::new().await;
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let mut settings = settings_with_notify(&format!("http://127.0.0.1:{port}/hooks"), secret);
    settings.notify.max_attempts = 1;
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let worker = TestWorker::spawn_with(&db.pool, settings).await;
    let data = json!({ "customer": "cus_console", "order": "ord_1" });
    let mut tx = db.pool.begin().await.expect("begin");
    let notice = Notice {
        kind: "order.paid",
        dedupe_key: "order.paid:ord_1",
        event_id: Some("evt_console1"),
        data: data.clone(),
    };
    assert!(outbox.enqueue(&mut tx, notice).await.expect("enqueue"));
    tx.commit().await.expect("commit");
    run_due_jobs(&db.pool).await;
    worker.stop().await.expect("clean stop");
    let (id, job_id): (String, String) = sqlx::query_as(
        "SELECT n.id, d.job_id FROM app_notifications n JOIN dead_letters d ON d.kind = 'notify_app' \
          WHERE n.status = 'dead'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a dead notice and its dead letter");
    let console = Console::start(&db.pool).await;

    let shown = read(&console, &format!("/notices/{id}")).await;
    let notice = &shown["notice"];
    assert_eq!(notice["id"], id.as_str());
    assert_eq!(notice["type"], "order.paid");
    assert_eq!(notice["event_id"], "evt_console1");
    assert_eq!(notice["body"]["type"], "order.paid");
    assert_eq!(notice["body"]["data"], data);
    assert_eq!(notice["status"], "dead");
    assert_eq!(notice["attempts"], 1);
    assert!(notice["last_status"].is_null(), "no answer came: {notice}");
    assert!(notice["last_error"].is_string(), "{notice}");
    let dead = &shown["dead_letter"];
    assert_eq!(dead["job_id"], job_id.as_str());
    assert_eq!(dead["attempts"], 1);
    assert!(dead["error"].is_string());
    assert!(
        !shown.to_string().contains(secret),
        "the signing secret leaked"
    );

    let listed = read(&console, "/notices?event=evt_console1").await;
    assert_eq!(ids(&listed, "notices", "id"), [id.as_str()]);
    console.stop().await;
}
