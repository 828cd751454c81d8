//! `billhook-worker migrate`: prepares an empty database for both binaries, and is safe to
//! run again.

use std::process::Command;

use billhook_testkit::TestDatabase;

fn migrate(database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_billhook-worker"))
        .env_clear()
        .env("DATABASE_URL", database_url)
        .arg("migrate")
        .output()
        .expect("run billhook-worker migrate")
}

#[tokio::test]
async fn migrate_prepares_an_empty_database_and_can_run_again() {
    let db = TestDatabase::unmigrated().await;
    assert!(billhook_core::db::check_migrated(&db.pool).await.is_err());

    for run in 0..2 {
        let output = migrate(&db.url);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Each step once, and nothing of PostgreSQL's notices (`schema "apalis" already exists`).
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        let everything = format!("{printed}{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(printed.matches("database migrated").count(), 1, "{printed}");
        assert_eq!(printed.matches("job queue tables:").count(), 1, "{printed}");
        assert_eq!(printed.matches("billhook tables:").count(), 1, "{printed}");
        assert!(!everything.contains("already exists"), "{everything}");
        if run == 1 {
            assert!(
                printed.contains("job queue tables: 0 migration(s) applied"),
                "{printed}"
            );
            assert!(
                printed.contains("billhook tables: 0 migration(s) applied"),
                "{printed}"
            );
        } else {
            assert!(
                !printed.contains("billhook tables: 0 migration(s)"),
                "{printed}"
            );
        }
    }

    billhook_core::db::check_migrated(&db.pool)
        .await
        .expect("migrated");
    assert_eq!(db.count("webhook_events").await, 0);
    assert_eq!(db.count("apalis.jobs").await, 0);
}

#[tokio::test]
async fn migrate_against_an_unreachable_database_fails_with_a_clear_message() {
    let output = migrate("postgres://billhook:hunter2@127.0.0.1:1/none");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn event_bodies_and_mirrored_objects_are_compressed_with_lz4_where_the_server_has_it() {
    let db = TestDatabase::new().await;
    let has_lz4 = sqlx::query("SET default_toast_compression = 'lz4'")
        .execute(&db.pool)
        .await
        .is_ok();
    let methods: Vec<(String, String)> = sqlx::query_as(
        "SELECT attrelid::regclass::text || '.' || attname, attcompression::text
           FROM pg_attribute
          WHERE (attrelid = 'webhook_events'::regclass AND attname = 'body')
             OR (attname = 'object' AND attrelid IN ('customers'::regclass, 'invoices'::regclass,
                 'subscriptions'::regclass, 'payments'::regclass))",
    )
    .fetch_all(&db.pool)
    .await
    .expect("compression methods");

    assert_eq!(methods.len(), 5);
    let expected = if has_lz4 { "l" } else { "" };
    for (column, method) in methods {
        assert_eq!(method, expected, "{column}");
    }
}
