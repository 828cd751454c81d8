//! A database of its own for every test, created on the server named by
//! `BILLHOOK_TEST_DATABASE_URL` (else `DATABASE_URL`, else the local server at
//! 127.0.0.1:5432 as user postgres). Names start with `billhook_test_`. A test's database is
//! dropped when its `TestDatabase` is (also when the test fails: unwinding drops it);
//! scripts/test.sh drops the ones an interrupted run left.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    pub name: String,
    /// URL of this test's database, for the pool and for child processes.
    pub url: String,
    pub pool: PgPool,
}

/// The URL of the server's maintenance database that test databases are created from.
pub fn server_url() -> String {
    std::env::var("BILLHOOK_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| DEFAULT_SERVER.to_owned())
}

impl TestDatabase {
    /// A new database with apalis's and Billhook's migrations applied.
    pub async fn new() -> Self {
        let db = Self::unmigrated().await;
        billhook_core::db::migrate(&db.pool)
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// A new, empty database.
    pub async fn unmigrated() -> Self {
        let server = server_url();
        let name = format!(
            "billhook_test_{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        let mut admin = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        admin.close().await.ok();
        let mut url = url::Url::parse(&server).expect("the test server URL is a URL");
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .expect("connect to the test database");
        Self { name, url, pool }
    }

    /// `SELECT count(*)` of a table (or any FROM clause), for assertions.
    pub async fn count(&self, from: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {from}")))
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("count {from}: {e}"))
    }
}

impl Drop for TestDatabase {
    /// Drops the database on a thread of its own (a `Drop` cannot await, and the test's
    /// runtime may be the current-thread kind), forcing out connections still open.
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let server = server_url();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&server).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .execute(&mut admin)
                .await
                .ok()?;
                admin.close().await.ok()
            })
        });
        let _ = dropped.join();
    }
}
