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
