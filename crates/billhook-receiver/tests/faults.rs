//! The receiver on a bad day: PostgreSQL dropping its connections, a database that accepts
//! connections and never answers, clients that trickle their bodies or hold connections.

use std::time::Duration;

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::{TestDatabase, TestReceiver, receiver};
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn customer_event(n: usize) -> serde_json::Value {
    let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    event["id"] = format!("evt_faults{n:04}").into();
    event
}

/// `pg_terminate_backend` makes PostgreSQL send "terminating connection due to administrator
/// command" (SQLSTATE 57P01) on every connection of the receiver's pool, as a fast restart or
/// a failover does. Each delivery is then unavailable (503, Stripe retries) or stored, never an
/// internal error, and what was refused is stored when sent again.
#[tokio::test]
async fn connections_terminated_by_postgresql_answer_503_never_500_and_lose_nothing() {
    let app = TestReceiver::spawn_with(|s| {
        s.database.min_connections = 4;
        s.database.max_connections = 4;
    })
    .await;
    assert_eq!(app.deliver(&customer_event(0)).await.status(), 200);

    let mut unavailable = 0;
    let mut refused = Vec::new();
    for round in 1..=5 {
        let terminated: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND backend_type = 'client backend'",
        )
        .fetch_all(&app.db.pool)
        .await
        .expect("terminate the receiver's connections");
        assert!(
            !terminated.is_empty(),
            "round {round}: nothing to terminate"
        );
        for n in 0..4 {
            let event = customer_event(round * 10 + n);
            let status = app.deliver(&event).await.status().as_u16();
            match status {
                200 => {}
                503 => {
                    unavailable += 1;
                    refused.push(event);
                }
                other => panic!("round {round}: answered {other}, not 200 or 503"),
            }
        }
    }
    assert!(
        unavailable > 0,
        "the terminated connections were never noticed: the test did not test anything"
    );

    for event in &refused {
        assert_eq!(app.deliver(event).await.status(), 200, "sent again");
    }
    assert_eq!(app.db.count("webhook_events").await, 21);
    assert_eq!(app.db.count("apalis.jobs").await, 21);
}

/// A "database" that accepts connections and never says a word: the webhook answers 503 once
/// the database timeout has passed, and /readyz answers within its own, shorter bound (a probe
/// allows about 1 s) even when that timeout is long.
#[tokio::test]
async fn a_database_that_never_answers_gets_503_and_readyz_answers_within_its_own_bound() {
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_port = silent.local_addr().expect("address").port();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            connections.push(socket);
        }
    });
    let db = TestDatabase::new().await;
    let mut settings = receiver::settings(&db.url);
    settings.database.timeout = Duration::from_secs(20);
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(20))
        .connect_lazy(&format!(
            "postgres://postgres@127.0.0.1:{silent_port}/silent"
        ))
        .expect("lazy pool");
    let app = billhook_receiver::Application::build_with_pool(settings.clone(), pool).expect("app");
    let app = TestReceiver::start(db, settings, app);

    // Well under the 20 s database timeout: only a bound of readyz's own can answer in time.
    let response = app
        .client
        .get(format!("{}/readyz", app.admin_address))
        .timeout(Duration::from_secs(8))
        .send()
        .await
        .expect("/readyz answers before the database timeout");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["reason"], "database timed out");
    held.abort();
}

/// Opens a connection and sends a request head announcing `length` body bytes.
async fn start_post(app: &TestReceiver, length: usize) -> TcpStream {
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /api/webhooks/stripe HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         stripe-signature: t=1,v1=00\r\ncontent-length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
}

/// A client that sends its body a byte at a time is answered 408 and disconnected once the
/// body timeout passes, long before it would have finished.
#[tokio::test]
async fn a_body_trickled_byte_by_byte_is_cut_off_with_408() {
    let app = TestReceiver::spawn_with(|s| s.request_body_timeout = Duration::from_secs(1)).await;
    let (mut reader, mut writer) = start_post(&app, 200).await.into_split();
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        while sent < 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });

    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "answer to a trickled body: {answer:?}"
    );
    assert!(answer.contains("request body too slow"), "{answer:?}");
    trickle.abort();
    assert_eq!(app.db.count("webhook_events").await, 0);
}

/// Past the connection limit a new connection is not served until another closes: 500 slow
/// clients cannot take more than their share.
#[tokio::test]
async fn past_the_connection_limit_new_connections_wait_until_one_closes() {
    let app = TestReceiver::spawn_with(|s| {
        s.http_max_connections = 1;
        s.request_head_timeout = Duration::from_secs(30);
    })
    .await;
    // The one allowed connection, sending half a request head.
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut holder = TcpStream::connect(&address).await.expect("connect");
    holder.write_all(b"POST /api/webhooks").await.expect("part");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let event = customer_event(1);
    let request = app.deliver(&event);
    tokio::pin!(request);
    let early = tokio::time::timeout(Duration::from_secs(1), &mut request).await;
    assert!(
        early.is_err(),
        "served beside the held connection: no limit"
    );

    drop(holder);
    assert_eq!(request.await.status(), 200);
    assert_eq!(app.db.count("webhook_events").await, 1);
}

/// A verified delivery whose data PostgreSQL refuses (here a trigger raising a data exception,
/// SQLSTATE 22023, as an out-of-range value does) is malformed: 400, nothing stored, and the
/// receiver goes on storing other events.
#[tokio::test]
async fn data_postgresql_refuses_is_a_400_not_a_500() {
    let app = TestReceiver::spawn().await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.id = 'evt_faults0666' THEN
               RAISE EXCEPTION 'value out of range' USING ERRCODE = '22023';
             END IF;
             RETURN NEW;
           END $$;
         CREATE TRIGGER refuse_event BEFORE INSERT ON webhook_events
           FOR EACH ROW EXECUTE FUNCTION refuse_event();",
    )
    .execute(&app.db.pool)
    .await
    .expect("install the trigger");

    let response = app.deliver(&customer_event(666)).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "malformed event");
    assert_eq!(app.db.count("webhook_events").await, 0);

    assert_eq!(app.deliver(&customer_event(667)).await.status(), 200);
    assert_eq!(app.db.count("webhook_events").await, 1);
}
