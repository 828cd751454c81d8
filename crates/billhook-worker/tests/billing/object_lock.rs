//! Two events about one Stripe object are never applied side by side: ProcessEvent takes the
//! object's advisory lock (with the event row's, in one statement, when the receiver stored the
//! object id; from the parsed body for events stored before it did) before it writes anything.

use std::time::{Duration, Instant};

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use sqlx::PgPool;

/// Waits until some session of this database waits for an advisory lock.
async fn wait_for_a_waiter(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
              WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .fetch_one(pool)
        .await
        .expect("pg_locks");
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the event was never held up by its object's lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(pool: &PgPool, id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM webhook_events WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("status")
}

async fn an_event_waits_for_its_objects_lock(object_id_stored: bool) {
    let db = TestDatabase::new().await;
    let event = fixtures::event("customer.updated", ApiShape::Dahlia).expect("fixture");
    let object = event["data"]["object"]["id"]
        .as_str()
        .expect("object id")
        .to_owned();
    let id = billing::store(&db.pool, &event).await;
    let stored: Option<String> =
        sqlx::query_scalar("SELECT object_id FROM webhook_events WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await
            .expect("object id");
    assert_eq!(
        stored.as_deref(),
        Some(object.as_str()),
        "the receiver stores it"
    );
    if !object_id_stored {
        sqlx::query("UPDATE webhook_events SET object_id = NULL WHERE id = $1")
            .bind(&id)
            .execute(&db.pool)
            .await
            .expect("forget the object id");
    }
    let mut holder = db.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&object)
        .execute(&mut *holder)
        .await
        .expect("hold the object's lock");

    let applier = Applier::new(&db.pool, billing::context());
    let run = tokio::spawn(async move { applier.deliver(&event).await });
    wait_for_a_waiter(&db.pool).await;
    assert_eq!(status(&db.pool, &id).await, "received");

    holder.commit().await.expect("release");
    assert_eq!(run.await.expect("task").expect("applied"), "applied");
}

#[tokio::test]
async fn an_event_waits_while_another_holds_its_object() {
    an_event_waits_for_its_objects_lock(true).await;
}

#[tokio::test]
async fn an_event_stored_without_its_object_id_waits_too() {
    an_event_waits_for_its_objects_lock(false).await;
}
