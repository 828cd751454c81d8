//! The connection pool and the two sets of migrations: apalis's (schema `apalis`, its own
//! history table) and Billhook's (`migrations/`, `public._sqlx_migrations`). apalis's run
//! first because ours may refer to its tables.

use std::borrow::Cow;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseSettings;

/// Billhook's own migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// The command an operator runs to migrate, named in every "not migrated" message.
pub const MIGRATE_COMMAND: &str = "billhook-worker migrate";

fn apalis_migrator() -> Migrator {
    apalis_postgres::PostgresStorage::<()>::migrations()
}

pub mod errors;
pub mod nodelay;

static NODELAY_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Pool options shared by both binaries. The acquire timeout bounds how long a request can
/// wait for a connection when PostgreSQL is down or the pool is exhausted. No ping before
/// each use: it costs a round trip per request (measured: 2,860 → 3,140 tx/s in pgbench at 16
/// clients), and a broken connection still surfaces as an error that is answered with 503 and
/// retried by Stripe. Each new connection to `options`' host gets TCP_NODELAY ([`nodelay`]).
pub fn pool_options(settings: &DatabaseSettings, options: &PgConnectOptions) -> PgPoolOptions {
    let host = options.get_host().to_owned();
    let port = options.get_port();
    PgPoolOptions::new()
        .test_before_acquire(false)
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections.min(settings.max_connections))
        .acquire_timeout(settings.timeout)
        .after_connect(move |_, _| {
            let host = host.clone();
            Box::pin(async move {
                if let Err(e) = nodelay::enable(&host, port).await {
                    // Only latency suffers: the connection itself is fine. Said once, not for
                    // every connection (a container's seccomp profile may refuse pidfd_getfd).
                    if !NODELAY_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(error = %e,
                            "cannot set TCP_NODELAY on PostgreSQL connections: messages over 16 KiB on TLS connections may wait 40 ms");
                    }
                }
                Ok(())
            })
        })
}

pub fn connect_options(settings: &DatabaseSettings) -> anyhow::Result<PgConnectOptions> {
    settings
        .url
        .expose_secret()
        .parse::<PgConnectOptions>()
        // The URL may hold a password: the message names the setting, never the value.
        .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL"))
}

/// Opens the pool and checks that the database answers.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = connect_options(settings)?;
    let pool = pool_options(settings, &options)
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL (DATABASE_URL)")?;
    Ok(pool)
}

/// Like [`connect`], retrying for up to `wait` while PostgreSQL cannot be reached (down,
/// restarting, refusing connections): a daemon started during an outage waits for the
/// database, saying so, instead of exiting at once for its supervisor to restart it (ever more
/// slowly, under Kubernetes). Any other error (a refused password, a missing database) fails at
/// once.
pub async fn connect_waiting(
    settings: &DatabaseSettings,
    wait: std::time::Duration,
) -> anyhow::Result<PgPool> {
    retry_while_unavailable(
        wait,
        "PostgreSQL cannot be reached yet; waiting for it",
        || async {
            let options = connect_options(settings)?;
            pool_options(settings, &options)
                .connect_with(options)
                .await
                .map_err(|e| {
                    anyhow::Error::new(e).context("cannot connect to PostgreSQL (DATABASE_URL)")
                })
        },
    )
    .await
}

/// Runs `attempt` again while it fails because PostgreSQL is unavailable (an error of the
/// *unavailable* class anywhere in its chain: down, restarting, terminating connections), for
/// up to `wait`, with pauses from 0.5 s doubling to 5 s, each logged with `waiting` as the
/// message. Any other error, or the last one past `wait`, is returned.
pub async fn retry_while_unavailable<T, F, Fut>(
    wait: std::time::Duration,
    waiting: &str,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = std::time::Instant::now() + wait;
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if unavailable(&e) && std::time::Instant::now() < deadline => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?delay, "{waiting}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn unavailable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .any(errors::is_unavailable)
}

/// Runs apalis's setup, then Billhook's migrations. Safe to run again, and from several
/// processes at once (both migrators take an advisory lock).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Migrated> {
    let apalis = apalis_migrator();
    let queue_missing = missing(pool, &apalis).await?;
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .context("apalis migrations failed")?;
    let billhook_missing = missing(pool, &MIGRATOR).await?;
    MIGRATOR
        .run(pool)
        .await
        .context("billhook migrations failed")?;
    Ok(Migrated {
        queue: Step {
            applied: queue_missing,
            total: up_migrations(&apalis).len(),
        },
        billhook: Step {
            applied: billhook_missing,
            total: up_migrations(&MIGRATOR).len(),
        },
    })
}

/// What [`migrate`] did, per set of migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The job queue's (apalis's) tables.
    pub queue: Step,
    /// Billhook's own tables.
    pub billhook: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Migrations applied by this run.
    pub applied: usize,
    /// Migrations this build knows.
    pub total: usize,
}

/// The database lacks migrations this build needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database is not migrated ({missing} migration(s) of {what} not applied): run `{MIGRATE_COMMAND}` first"
)]
pub struct NotMigrated {
    pub what: &'static str,
    pub missing: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationCheckError {
    #[error(transparent)]
    NotMigrated(#[from] NotMigrated),
    #[error("cannot read the migration history")]
    Database(#[from] sqlx::Error),
}

/// The readiness probes' own bound, below the 1 s that orchestrators' probes usually allow:
/// with the database down or not answering, waiting for the pool's whole timeout (or for a
/// query that never returns) would make the probe itself time out, and say nothing.
pub const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(800);

/// Both binaries' readiness: PostgreSQL answers within `within` (at most [`READY_WITHIN`]) and
/// holds every migration this build needs. The error, fit for the probe's body, says which is
/// not so, never a connection detail.
pub async fn readiness(pool: &PgPool, within: std::time::Duration) -> Result<(), String> {
    match tokio::time::timeout(within.min(READY_WITHIN), check_migrated(pool)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(MigrationCheckError::NotMigrated(e))) => Err(e.to_string()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err("database unreachable".to_owned())
        }
        Err(_) => Err("database timed out".to_owned()),
    }
}

/// Fails unless every migration of apalis and of Billhook that this build knows is applied.
pub async fn check_migrated(pool: &PgPool) -> Result<(), MigrationCheckError> {
    check_one(pool, &apalis_migrator(), "apalis").await?;
    check_one(pool, &MIGRATOR, "billhook").await?;
    Ok(())
}

async fn check_one(
    pool: &PgPool,
    migrator: &Migrator,
    what: &'static str,
) -> Result<(), MigrationCheckError> {
    let missing = missing(pool, migrator).await?;
    if missing > 0 {
        return Err(NotMigrated { what, missing }.into());
    }
    Ok(())
}

fn up_migrations(migrator: &Migrator) -> Vec<i64> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect()
}

/// How many of `migrator`'s migrations the database lacks.
async fn missing(pool: &PgPool, migrator: &Migrator) -> Result<usize, sqlx::Error> {
    let table: &Cow<'static, str> = &migrator.table_name;
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(table.as_ref())
        .fetch_one(pool)
        .await?;
    let expected = up_migrations(migrator);
    let applied: Vec<i64> = if exists.is_some() {
        // The table name comes from the migrator (a constant), never from input.
        let sql = format!("SELECT version FROM {table} WHERE success");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(expected.iter().filter(|v| !applied.contains(v)).count())
}
