//! Notices to the host application end to end: the outbox on a real PostgreSQL database, a
//! running worker, and an application of the test's own, a real HTTP server on 127.0.0.1:0.
//! Signatures are checked with HMAC and base64 written here, not with the worker's code.

use std::net::TcpListener;
use std::time::Duration;

use billhook_testkit::hook_server::{HookServer, Received};
use billhook_testkit::worker::{run_due_jobs, settings, settings_with_notify};
use billhook_testkit::{TestDatabase, TestWorker};
use billhook_worker::notify::job::NotifyAppJob;
use billhook_worker::notify::{Notice, Outbox};
use billhook_worker::queue::JobKind as _;
use billhook_worker::queue::jobs::NotifyApp;
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(30);
const EVENT_ID: &str = "evt_1NotifyTest";

/// Enqueues a notice in a transaction of its own and commits it.
async fn enqueue(pool: &PgPool, outbox: &Outbox, dedupe_key: &str, data: Value) -> bool {
    let mut tx = pool.begin().await.expect("begin");
    let new = outbox
        .enqueue(
            &mut tx,
            Notice {
                kind: "subscription.past_due",
                dedupe_key,
                event_id: Some(EVENT_ID),
                data,
            },
        )
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    new
}

/// A fresh random key and its `whsec_` secret.
fn new_secret() -> (Vec<u8>, String) {
    let key: [u8; 32] = rand::random();
    let secret = format!("whsec_{}", base64_encode(&key));
    (key.to_vec(), secret)
}

async fn notification(pool: &PgPool) -> (String, String, i32, Option<i32>, Value) {
    sqlx::query_as("SELECT id, status, attempts, last_status, body FROM app_notifications")
        .fetch_one(pool)
        .await
        .expect("one notification")
}

#[tokio::test]
async fn a_committed_notice_is_posted_signed_and_marked_delivered() {
    let db = TestDatabase::new().await;
    let app = HookServer::start(&[], 200);
    let (key, secret) = new_secret();
    let settings = settings_with_notify(&app.url, &secret);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let _worker = TestWorker::spawn_with(&db.pool, settings).await;

    let data = json!({ "subscription": "sub_1", "customer": "cus_1" });
    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", data.clone()).await);
    run_due_jobs(&db.pool).await;
    assert_eq!(
        db.count("app_notifications WHERE status = 'delivered'")
            .await,
        1
    );

    let received = app.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    let (id, _, attempts, last_status, stored_body) = notification(&db.pool).await;
    assert!(id.starts_with("ntf_"), "{id}");
    assert_eq!(request.header("webhook-id"), id);
    assert_eq!(request.header("content-type"), "application/json");
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .parse()
        .expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300);
    assert!(signature_verifies(&key, request));

    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    assert_eq!(body, stored_body);
    assert_eq!(body["type"], "subscription.past_due");
    assert_eq!(body["data"], data);
    let sent_at = body["timestamp"].as_str().expect("timestamp");
    chrono::DateTime::parse_from_rfc3339(sent_at).expect("an RFC 3339 timestamp");

    assert_eq!((attempts, last_status), (1, Some(200)));
    assert_eq!(
        db.count("app_notifications WHERE delivered_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn a_failing_application_gets_the_same_notice_again_until_it_accepts_it_once() {
    let db = TestDatabase::new().await;
    let app = HookServer::start(&[500, 500], 200);
    let (key, secret) = new_secret();
    let settings = settings_with_notify(&app.url, &secret);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let _worker = TestWorker::spawn_with(&db.pool, settings).await;

    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({})).await);
    run_due_jobs(&db.pool).await;
    assert_eq!(
        db.count("apalis.jobs WHERE job_type = 'billhook.notify_app' AND status = 'Done'")
            .await,
        1
    );

    let received = app.received();
    let answered: Vec<u16> = received.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [500, 500, 200]);
    let (id, status, attempts, last_status, _) = notification(&db.pool).await;
    assert!(received.iter().all(|r| r.header("webhook-id") == id));
    assert!(received.iter().all(|r| signature_verifies(&key, r)));
    assert_eq!(status, "delivered");
    assert_eq!((attempts, last_status), (3, Some(200)));
    assert_eq!(db.count("job_failures WHERE kind = 'notify_app'").await, 2);
    assert_eq!(db.count("dead_letters").await, 0);
}

#[tokio::test]
async fn a_notice_the_application_always_refuses_is_dead_lettered() {
    let db = TestDatabase::new().await;
    let app = HookServer::start(&[], 500);
    let (_, secret) = new_secret();
    let mut settings = settings_with_notify(&app.url, &secret);
    settings.notify.max_attempts = 2;
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let _worker = TestWorker::spawn_with(&db.pool, settings).await;

    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({})).await);
    run_due_jobs(&db.pool).await;
    assert_eq!(db.count("app_notifications WHERE status = 'dead'").await, 1);

    let (event_id, attempts, error): (Option<String>, i32, String) = sqlx::query_as(
        "SELECT event_id, attempts, error FROM dead_letters WHERE kind = 'notify_app'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a notify_app dead letter");
    assert_eq!(event_id.as_deref(), Some(EVENT_ID));
    assert_eq!(attempts, 2);
    assert!(error.contains("500"), "{error}");
    assert_eq!(app.received().len(), 2);
    let (_, _, attempts, last_status, _) = notification(&db.pool).await;
    assert_eq!((attempts, last_status), (2, Some(500)));
}

#[tokio::test]
async fn without_a_url_a_notice_is_recorded_as_skipped_and_no_job_is_pushed() {
    let db = TestDatabase::new().await;
    let outbox = Outbox::from_settings(&settings().notify).expect("outbox");

    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({})).await);

    let (_, status, attempts, _, _) = notification(&db.pool).await;
    assert_eq!((status.as_str(), attempts), ("skipped", 0));
    assert_eq!(db.count("apalis.jobs").await, 0);
}

#[tokio::test]
async fn the_same_dedupe_key_gives_one_notice_and_one_job() {
    let db = TestDatabase::new().await;
    let (_, secret) = new_secret();
    let settings = settings_with_notify("http://127.0.0.1:9/never-called", &secret);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");

    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({ "n": 1 })).await);
    assert!(!enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({ "n": 2 })).await);

    let (id, status, _, _, body) = notification(&db.pool).await;
    assert_eq!(status, "pending");
    assert_eq!(body["data"], json!({ "n": 1 }));
    let jobs: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT job_type, idempotency_key FROM apalis.jobs")
            .fetch_all(&db.pool)
            .await
            .expect("jobs");
    assert_eq!(jobs, [("billhook.notify_app".to_owned(), Some(id))]);
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_neither_notice_nor_job() {
    let db = TestDatabase::new().await;
    let (_, secret) = new_secret();
    let settings = settings_with_notify("http://127.0.0.1:9/never-called", &secret);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");

    let mut tx = db.pool.begin().await.expect("begin");
    let notice = Notice {
        kind: "subscription.past_due",
        dedupe_key: "sub_1:past_due:1",
        event_id: Some(EVENT_ID),
        data: json!({}),
    };
    assert!(outbox.enqueue(&mut tx, notice).await.expect("enqueue"));
    tx.rollback().await.expect("rollback");

    assert_eq!(db.count("app_notifications").await, 0);
    assert_eq!(db.count("apalis.jobs").await, 0);
}

#[tokio::test]
async fn running_the_job_of_a_delivered_notice_again_sends_nothing() {
    let db = TestDatabase::new().await;
    let app = HookServer::start(&[], 204);
    let (_, secret) = new_secret();
    let settings = settings_with_notify(&app.url, &secret);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let job = NotifyAppJob::new(db.pool.clone(), &settings.notify).expect("job");
    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({})).await);
    let (id, _, _, _, _) = notification(&db.pool).await;
    let args = NotifyApp::new(id, Some(EVENT_ID.to_owned()));

    job.run(args.clone()).await.expect("first run delivers");
    job.run(args).await.expect("second run is a no-op");

    assert_eq!(app.received().len(), 1);
    let (_, status, attempts, last_status, _) = notification(&db.pool).await;
    assert_eq!(status, "delivered");
    assert_eq!((attempts, last_status), (1, Some(204)));
}

#[tokio::test]
async fn an_unreachable_application_is_a_retryable_failure_recorded_on_the_notice() {
    let db = TestDatabase::new().await;
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (_, secret) = new_secret();
    let settings = settings_with_notify(&format!("http://127.0.0.1:{port}/hooks"), &secret);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let job = NotifyAppJob::new(db.pool.clone(), &settings.notify).expect("job");
    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({})).await);
    let (id, _, _, _, _) = notification(&db.pool).await;

    let error = job
        .run(NotifyApp::new(id, Some(EVENT_ID.to_owned())))
        .await
        .expect_err("nothing listens");

    assert!(error.is_retryable(), "{error}");
    let (_, status, attempts, last_status, _) = notification(&db.pool).await;
    assert_eq!(
        (status.as_str(), attempts, last_status),
        ("pending", 1, None)
    );
    let last_error: Option<String> = sqlx::query_scalar("SELECT last_error FROM app_notifications")
        .fetch_one(&db.pool)
        .await
        .expect("last_error");
    let last_error = last_error.expect("recorded");
    assert!(!last_error.contains("127.0.0.1"), "{last_error}");
}

/// An application that accepts the connection and the request and never answers: the attempt
/// fails at the notice timeout (a deadline over the whole exchange) and is retried later,
/// instead of holding the job for as long as the application stays silent.
#[tokio::test]
async fn a_silent_application_fails_the_attempt_at_the_timeout() {
    let db = TestDatabase::new().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("address").port();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            connections.push(socket);
        }
    });
    let (_, secret) = new_secret();
    let mut settings = settings_with_notify(&format!("http://127.0.0.1:{port}/hooks"), &secret);
    settings.notify.timeout = Duration::from_secs(1);
    let outbox = Outbox::from_settings(&settings.notify).expect("outbox");
    let job = NotifyAppJob::new(db.pool.clone(), &settings.notify).expect("job");
    assert!(enqueue(&db.pool, &outbox, "sub_1:past_due:1", json!({})).await);
    let (id, _, _, _, _) = notification(&db.pool).await;

    let error = tokio::time::timeout(WAIT, job.run(NotifyApp::new(id, Some(EVENT_ID.to_owned()))))
        .await
        .expect("the attempt ends at its deadline, not when the application speaks")
        .expect_err("the application never answered");

    assert!(error.is_retryable(), "{error}");
    let (_, status, attempts, _, _) = notification(&db.pool).await;
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    held.abort();
}

/// The test's verifier reproduces the Standard Webhooks specification's example, so a
/// delivery it accepts is one any Standard Webhooks library accepts.
#[test]
fn the_tests_own_verifier_agrees_with_the_specification() {
    let key = base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let request = Received {
        headers: vec![
            ("webhook-id".into(), "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp".into(), "1614265330".into()),
            (
                "webhook-signature".into(),
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            ),
        ],
        body: br#"{"test": 2432232314}"#.to_vec(),
        answered: 200,
    };
    assert!(signature_verifies(&key, &request));
    let altered = Received {
        body: br#"{"test": 2432232315}"#.to_vec(),
        ..request
    };
    assert!(!signature_verifies(&key, &altered));
}

// An independent Standard Webhooks verifier: HMAC-SHA256 (RFC 2104) over sha2, and base64
// (RFC 4648), written out here.

fn signature_verifies(key: &[u8], request: &Received) -> bool {
    let mut signed = format!(
        "{}.{}.",
        request.header("webhook-id"),
        request.header("webhook-timestamp")
    )
    .into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = format!("v1,{}", base64_encode(&hmac_sha256(key, &signed)));
    request
        .header("webhook-signature")
        .split(' ')
        .any(|candidate| candidate == expected)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest as _, Sha256};
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = padded.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let sextets: Vec<u32> = text
        .bytes()
        .filter(|c| *c != b'=')
        .map(|c| ALPHABET.iter().position(|a| *a == c).expect("base64") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in sextets.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, s)| n | s << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
