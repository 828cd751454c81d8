//! Old finished jobs leave apalis's table; recent and failed ones stay.

use std::time::Duration;

use billhook_testkit::TestDatabase;

#[tokio::test]
async fn only_finished_jobs_older_than_the_retention_are_deleted() {
    let db = TestDatabase::new().await;
    sqlx::raw_sql(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, done_at)
         VALUES ('01OLDDONE0000000000000000A', 'q', '\\x7b7d', 'Done',   1, 5, now(), now() - interval '8 days'),
                ('01NEWDONE0000000000000000B', 'q', '\\x7b7d', 'Done',   1, 5, now(), now() - interval '1 day'),
                ('01OLDFAIL0000000000000000C', 'q', '\\x7b7d', 'Failed', 5, 5, now(), now() - interval '30 days'),
                ('01OLDKILL0000000000000000D', 'q', '\\x7b7d', 'Killed', 1, 5, now(), now() - interval '30 days')",
    )
    .execute(&db.pool)
    .await
    .expect("seed jobs");

    let deleted =
        billhook_worker::queue::retention::sweep(&db.pool, Duration::from_secs(7 * 24 * 3600), 100)
            .await
            .expect("sweep");

    assert_eq!(deleted, 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM apalis.jobs ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .expect("ids");
    assert_eq!(
        left,
        [
            "01NEWDONE0000000000000000B",
            "01OLDFAIL0000000000000000C",
            "01OLDKILL0000000000000000D"
        ]
    );
}

mod events {
    //! Data retention (issue 16): what finished work leaves behind goes once past its time;
    //! the mirror, orders, ledger and audit log never; a redelivery of a pruned event is still
    //! a duplicate while its id is kept.

    use std::time::Duration;

    use billhook_testkit::TestReceiver;
    use billhook_testkit::billing::{Applier, context, create_order, snapshot};
    use billhook_testkit::fixtures::ApiShape;
    use billhook_testkit::scenarios::{self, Scenario};
    use billhook_worker::retention::{self, settings::RetentionSettings};
    use chrono::Utc;
    use serde_json::Value;

    use crate::console::harness::Console;

    const DAY: i64 = 24 * 3600;

    /// Table by table, so a failure names the table.
    fn same_mirror(now: &Value, before: &Value) {
        let tables = before.as_object().expect("tables");
        for (table, rows) in tables {
            // Notices to the application are finished work: retention removes them.
            if table == "once_per_order_notices" {
                continue;
            }
            assert_eq!(&now[table], rows, "{table} changed");
        }
        assert_eq!(now.as_object().expect("tables").len(), tables.len());
    }

    async fn exec(pool: &sqlx::PgPool, sql: &'static str) {
        sqlx::query(sql)
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    #[tokio::test]
    async fn only_finished_work_past_its_time_goes_and_a_pruned_event_is_still_a_duplicate() {
        let app = TestReceiver::spawn().await;
        let pool = &app.db.pool;
        let applier = Applier::new(pool, context());
        create_order(pool, scenarios::ORDER_REFERENCE, scenarios::SESSION).await;
        let mut events: Vec<Value> = Vec::new();
        for scenario in [
            Scenario::CheckoutPaidThenRefunded,
            Scenario::RenewalNeverRecovers,
        ] {
            for event in scenario.events(ApiShape::Dahlia) {
                applier.deliver(&event).await.expect("applied");
                events.push(event);
            }
        }
        // One event received and never processed (its job waits), one that failed for good.
        let waiting = billhook_testkit::fixtures::event("customer.updated", ApiShape::Dahlia)
            .expect("fixture");
        billhook_testkit::billing::store(pool, &waiting).await;
        exec(pool, "UPDATE webhook_events SET status = 'dead' WHERE id = (SELECT id FROM webhook_events WHERE status = 'received' LIMIT 1)").await;
        let dead_id: String =
            sqlx::query_scalar("SELECT id FROM webhook_events WHERE status = 'dead'")
                .fetch_one(pool)
                .await
                .expect("dead event");
        // Everything 100 days old, but for the last event of the refund story: 10 days.
        exec(
            pool,
            "UPDATE webhook_events SET received_at = now() - interval '100 days'",
        )
        .await;
        let recent = events[3]["id"].as_str().expect("id").to_owned();
        sqlx::query(
            "UPDATE webhook_events SET received_at = now() - interval '10 days' WHERE id = $1",
        )
        .bind(&recent)
        .execute(pool)
        .await
        .expect("recent");
        exec(pool, "UPDATE emails SET created_at = now() - interval '100 days', status = 'sent', sent_at = now() - interval '100 days'").await;
        exec(pool, "INSERT INTO emails (id, template, source, recipient, data, status, attempts, created_at) \
                    VALUES ('eml_pending_old', 'payment_receipt', 'src_pending', 'a@example.com', '{}', 'pending', 3, now() - interval '100 days')").await;
        exec(pool, "INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status, created_at) VALUES \
                    ('ntf_old', 'test.retention', 'k_old', 'evt_x', '{}', 'delivered', now() - interval '100 days'), \
                    ('ntf_new', 'test.retention', 'k_new', 'evt_x', '{}', 'delivered', now() - interval '10 days'), \
                    ('ntf_dead', 'test.retention', 'k_dead', 'evt_x', '{}', 'dead', now() - interval '100 days')").await;
        exec(
            pool,
            "INSERT INTO job_failures (job_id, kind, attempt, retryable, error, failed_at) VALUES \
                    ('job_done', 'send_email', 1, true, 'x', now() - interval '100 days'), \
                    ('job_dead', 'notify_app', 1, true, 'x', now() - interval '100 days'), \
                    ('job_done', 'send_email', 2, true, 'x', now() - interval '10 days')",
        )
        .await;
        exec(pool, "INSERT INTO dead_letters (job_id, kind, queue, argument, error, attempts, history, dead_at, requeued_at) VALUES \
                    ('job_requeued', 'send_email', 'q', '{}', 'x', 3, '[]', now() - interval '101 days', now() - interval '100 days'), \
                    ('job_dead', 'notify_app', 'q', '{}', 'x', 3, '[]', now() - interval '100 days', NULL)").await;

        let mirror = snapshot(pool).await;
        let audit = app.db.count("audit_log").await;
        let dunning = app.db.count("dunning_runs").await;
        let finished_old = app
            .db
            .count("webhook_events WHERE status IN ('applied', 'ignored', 'stale') AND received_at < now() - interval '90 days'")
            .await;
        assert!(finished_old > 5, "{finished_old}");

        let settings = RetentionSettings::default();
        let now = Utc::now();
        let pruned = retention::prune(pool, &settings, now, Duration::ZERO)
            .await
            .expect("prune");
        assert_eq!(pruned.event_bodies, finished_old as u64);
        assert_eq!(pruned.event_rows, 0, "ids are kept 120 days");
        assert_eq!(
            app.db
                .count("webhook_events WHERE pruned_at IS NOT NULL AND body = ''::bytea AND headers = '{}'")
                .await,
            finished_old
        );
        // The recent event and the dead one keep their bodies.
        for id in [&recent, &dead_id] {
            let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_events WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .expect("body");
            assert!(!body.is_empty(), "{id} keeps its body");
        }
        assert_eq!(
            app.db.count("emails").await,
            1,
            "only the pending email is left"
        );
        assert_eq!(app.db.count("emails WHERE id = 'eml_pending_old'").await, 1);
        assert_eq!(
            sqlx::query_scalar::<_, String>(
                "SELECT string_agg(id, ',' ORDER BY id) FROM app_notifications WHERE id LIKE 'ntf\\_%' AND length(id) < 10"
            )
            .fetch_one(pool)
            .await
            .expect("notices"),
            "ntf_dead,ntf_new"
        );
        assert_eq!(
            app.db.count("job_failures WHERE job_id = 'job_dead'").await,
            1,
            "a dead job keeps its history"
        );
        assert_eq!(
            app.db.count("job_failures WHERE job_id = 'job_done'").await,
            1,
            "the recent attempt stays"
        );
        assert_eq!(app.db.count("dead_letters").await, 1);
        assert_eq!(
            app.db.count("dead_letters WHERE job_id = 'job_dead'").await,
            1
        );
        // Nothing the business needs moved.
        same_mirror(&snapshot(pool).await, &mirror);
        assert_eq!(app.db.count("audit_log").await, audit);
        assert_eq!(app.db.count("dunning_runs").await, dunning);
        // A second pass finds nothing more.
        let again = retention::prune(pool, &settings, now, Duration::ZERO)
            .await
            .expect("prune");
        assert_eq!(again.total(), 0, "{again:?}");

        // Stripe delivers a pruned event again: still a duplicate, nothing queued, still pruned.
        let jobs = app.db.count("apalis.jobs").await;
        let pruned_event = &events[0];
        let answer = app.deliver(pruned_event).await;
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.expect("JSON");
        assert_eq!(body["duplicate"], true);
        assert_eq!(app.db.count("apalis.jobs").await, jobs);

        // The console says the payload is gone, and still shows what the event did.
        let console = Console::start(pool).await;
        let shown = console
            .json(&format!(
                "/events/{}",
                pruned_event["id"].as_str().expect("id")
            ))
            .await;
        assert!(shown["payload"].is_null(), "{shown}");
        assert!(shown["pruned_at"].is_string(), "{shown}");
        assert!(!shown["audit"].as_array().expect("audit").is_empty());
        console.stop().await;

        // 25 days on, the ids of the events received 100 days ago are 125 days old: their rows
        // go, but for the dead one (unfinished work); the one received 10 days ago stays.
        let later = now + chrono::Duration::seconds(25 * DAY);
        let pruned = retention::prune(pool, &settings, later, Duration::ZERO)
            .await
            .expect("prune");
        assert_eq!(pruned.event_rows, finished_old as u64);
        assert_eq!(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM webhook_events WHERE id = $1")
                .bind(&dead_id)
                .fetch_one(pool)
                .await
                .expect("count"),
            1
        );
        same_mirror(&snapshot(pool).await, &mirror);
        assert_eq!(app.db.count("audit_log").await, audit);
    }
}

mod command {
    //! `billhook-worker retention [--dry-run]`, as an operator runs it: the dry run counts and
    //! changes nothing, a pass removes what the count said, a pass refuses to run beside
    //! another one, and a retention under Stripe's 30 days is refused.

    use std::process::{Command, Output};

    use billhook_testkit::TestDatabase;
    use billhook_testkit::fixtures::{self, ApiShape};
    use billhook_worker::retention;
    use billhook_worker::schedule::TaskLock;

    fn worker(db: &TestDatabase, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_billhook-worker"))
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("BILLHOOK_LOG_FORMAT", "text")
            .args(args)
            .output()
            .expect("run billhook-worker")
    }

    fn text(output: &Output) -> (String, String) {
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The number on the line of `what` in the command's table.
    fn count(stdout: &str, what: &str) -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(what))
            .unwrap_or_else(|| panic!("no `{what}` line in:\n{stdout}"));
        line.split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count on `{line}`"))
    }

    #[tokio::test]
    async fn the_command_counts_then_prunes_once_and_never_beside_another_pass() {
        let db = TestDatabase::new().await;
        let pool = &db.pool;
        for _ in 0..5 {
            let event = fixtures::event("customer.updated", ApiShape::Dahlia).expect("fixture");
            billhook_testkit::billing::store(pool, &event).await;
        }
        // Three finished 100 days ago, one failed then (it keeps its body), one recent.
        sqlx::raw_sql(
            "UPDATE webhook_events SET status = 'applied', received_at = now() - interval '100 days' \
              WHERE id IN (SELECT id FROM webhook_events ORDER BY id LIMIT 3);
             UPDATE webhook_events SET status = 'dead', received_at = now() - interval '100 days' \
              WHERE id = (SELECT id FROM webhook_events WHERE status = 'received' ORDER BY id LIMIT 1);
             INSERT INTO emails (id, template, source, recipient, data, status, attempts, created_at) VALUES \
               ('eml_old_sent', 'payment_receipt', 'src_a', 'a@example.com', '{}', 'sent', 1, now() - interval '100 days'), \
               ('eml_old_pending', 'payment_receipt', 'src_b', 'b@example.com', '{}', 'pending', 3, now() - interval '100 days');",
        )
        .execute(pool)
        .await
        .expect("seed");
        let bodies = "webhook_events WHERE octet_length(body) > 0";
        assert_eq!(db.count(bodies).await, 5);

        let dry = worker(&db, &["retention", "--dry-run"]);
        let (out, err) = text(&dry);
        assert!(dry.status.success(), "{out}\n{err}");
        assert_eq!(count(&out, "event bodies cleared"), 3, "{out}");
        assert_eq!(count(&out, "emails"), 1, "{out}");
        assert!(out.contains("would remove 4 rows"), "{out}");
        assert_eq!(db.count(bodies).await, 5, "a dry run changes nothing");
        assert_eq!(db.count("emails").await, 2);

        // Another process is pruning: the command refuses and removes nothing.
        let held = TaskLock::try_acquire(pool, retention::TASK)
            .await
            .expect("query")
            .unwrap_or_else(|_| panic!("the lock is free"));
        let busy = worker(&db, &["retention"]);
        let (out, err) = text(&busy);
        assert!(!busy.status.success(), "{out}");
        assert!(
            err.contains("another process is applying retention"),
            "{err}"
        );
        assert_eq!(db.count(bodies).await, 5);
        held.release().await;

        let pass = worker(&db, &["retention"]);
        let (out, err) = text(&pass);
        assert!(pass.status.success(), "{out}\n{err}");
        assert_eq!(count(&out, "event bodies cleared"), 3, "{out}");
        assert_eq!(count(&out, "emails"), 1, "{out}");
        assert!(out.contains("removed 4 rows"), "{out}");
        assert_eq!(
            db.count(bodies).await,
            2,
            "the dead and the recent event keep theirs"
        );
        assert_eq!(db.count("emails WHERE id = 'eml_old_pending'").await, 1);
        assert_eq!(db.count("emails").await, 1);

        let again = worker(&db, &["retention", "--dry-run"]);
        let (out, _) = text(&again);
        assert!(out.contains("would remove 0 rows"), "{out}");

        let short = worker(&db, &["--event-retention", "10d", "retention"]);
        let (out, err) = text(&short);
        assert!(!short.status.success(), "{out}");
        assert!(err.contains("shorter than 30 days"), "{err}");
    }
}
