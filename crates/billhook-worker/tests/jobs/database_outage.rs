//! The worker's database goes away and comes back: nothing is lost, nothing is applied twice,
//! and the process carries on without anyone restarting it. Multi-threaded runtimes, as in the
//! binary: the restart policy's pauses block only the monitor's thread there.

use std::time::Duration;

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::proxy::CuttableProxy;
use billhook_testkit::worker::{RETRY_HORIZON, run_jobs_due_within, wait_for_count};
use billhook_testkit::{TestReceiver, TestWorker};
use sqlx::postgres::PgPoolOptions;

const EVENTS: usize = 60;

fn customer_event(n: usize) -> serde_json::Value {
    let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    event["data"]["object"]["id"] = format!("cus_outage{n:03}").into();
    event
}

#[derive(Clone, Copy, Debug)]
enum Outage {
    /// Nothing listens: connections are refused.
    Refused,
    /// Connections are accepted and dropped at once (a server starting up, a balancer).
    Dropped,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_connections_for_a_while_loses_nothing() {
    outage(Outage::Refused).await;
}

/// Connections accepted and dropped during the handshake, as by a server still starting up or
/// a balancer without a backend. This used to stall the worker until a process restart: every
/// job kind ran in one apalis monitor, whose restart pauses blocked the one task that also ran
/// every other kind's jobs and heartbeats (see `daemon.rs`); it failed in about three runs of
/// five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_drops_every_connection_for_a_while_loses_nothing() {
    outage(Outage::Dropped).await;
}

async fn outage(kind: Outage) {
    let app = TestReceiver::spawn().await;
    let mut url = url::Url::parse(&app.db.url).expect("URL");
    let target = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let target = tokio::net::lookup_host(&target)
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = CuttableProxy::start(target).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.address.port())).expect("port");
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url.as_str())
        .await
        .expect("connect through the proxy");
    let worker = TestWorker::spawn(&pool).await;

    for n in 0..EVENTS / 2 {
        assert_eq!(app.deliver(&customer_event(n)).await.status(), 200);
    }
    // A poll, not a drain: the cut comes once the worker is at work, not after it has finished.
    wait_for_count(
        &app.db.pool,
        "SELECT least(count(*), 1) FROM webhook_events WHERE status = 'applied'",
        1,
        Duration::from_secs(30),
    )
    .await;

    // The database vanishes for the worker while events keep arriving at the receiver.
    match kind {
        Outage::Refused => proxy.cut(),
        Outage::Dropped => proxy.drop_connections(),
    }
    for n in EVENTS / 2..EVENTS {
        assert_eq!(app.deliver(&customer_event(n)).await.status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    match kind {
        Outage::Refused => proxy.restore().await,
        Outage::Dropped => proxy.resume(),
    }

    run_jobs_due_within(&app.db.pool, RETRY_HORIZON, Duration::from_secs(90)).await;
    assert_eq!(
        app.db
            .count("webhook_events WHERE status = 'applied'")
            .await,
        EVENTS as i64
    );
    assert_eq!(app.db.count("customers").await, EVENTS as i64);
    assert_eq!(
        app.db
            .count("(SELECT event_id FROM audit_log GROUP BY event_id HAVING count(*) <> 1) twice")
            .await,
        0,
        "every event applied exactly once"
    );
    assert_eq!(app.db.count("audit_log").await, EVENTS as i64);
    assert_eq!(app.db.count("dead_letters").await, 0);
    worker
        .stop()
        .await
        .expect("the worker is still running and stops cleanly");
}

/// `billhook-worker run` started while PostgreSQL cannot be reached waits for it (the chaos
/// suite caught a worker restarted during a PostgreSQL restart exiting at once), while a
/// one-off connection gives up at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_started_during_an_outage_waits_for_the_database() {
    use clap::Parser as _;
    let db = billhook_testkit::TestDatabase::new().await;
    let mut url = url::Url::parse(&db.url).expect("URL");
    let target = tokio::net::lookup_host(format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    ))
    .await
    .expect("resolve")
    .next()
    .expect("an address");
    let proxy = CuttableProxy::start(target).await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.address.port())).expect("port");
    proxy.cut();
    let settings = billhook_worker::cli::Cli::try_parse_from([
        "billhook-worker",
        "--database-url",
        url.as_str(),
        "--database-timeout",
        "1s",
    ])
    .expect("settings")
    .database;

    assert!(
        billhook_core::db::connect(&settings).await.is_err(),
        "a one-off connection fails at once"
    );
    let waiting = tokio::spawn({
        let settings = settings.clone();
        async move { billhook_core::db::connect_waiting(&settings, Duration::from_secs(60)).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !waiting.is_finished(),
        "still waiting while the database is away"
    );
    proxy.restore().await;
    let pool = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("connected once the database is back")
        .expect("join")
        .expect("a pool");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("a query");
    assert_eq!(one, 1);
    // A database that is there but refuses the login is not waited for.
    let mut wrong = url.clone();
    wrong.set_username("no_such_role").expect("user");
    let refused = billhook_worker::cli::Cli::try_parse_from([
        "billhook-worker",
        "--database-url",
        wrong.as_str(),
    ])
    .expect("settings")
    .database;
    let started = std::time::Instant::now();
    assert!(
        billhook_core::db::connect_waiting(&refused, Duration::from_secs(60))
            .await
            .is_err()
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}
