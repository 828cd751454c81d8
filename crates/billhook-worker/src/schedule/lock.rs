//! One run of a task at a time across every worker process: a PostgreSQL session-level
//! advisory lock, held on a connection of its own for as long as the run lasts.
//!
//! The connection is taken out of the pool (detached): if the run is dropped half-way or the
//! process dies, the connection closes and PostgreSQL releases the lock with it, so a lock can
//! never outlive its holder or be left behind on a pooled connection.

use sqlx::{Connection as _, PgConnection, PgPool};

/// Another process (or run) holds the task's lock.
#[derive(Debug, thiserror::Error)]
#[error("another {task} run is in progress")]
pub struct Busy {
    pub task: &'static str,
}

/// A held task lock; [`TaskLock::release`] lets it go (dropping it does too, by closing its
/// connection).
pub struct TaskLock {
    task: &'static str,
    conn: PgConnection,
}

impl TaskLock {
    /// Takes the lock of `task` if free; `Ok(Err(Busy))` when another run holds it.
    pub async fn try_acquire(
        pool: &PgPool,
        task: &'static str,
    ) -> Result<Result<Self, Busy>, sqlx::Error> {
        let mut conn = pool.acquire().await?.detach();
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(key(task))
                .fetch_one(&mut conn)
                .await?;
        if taken {
            Ok(Ok(Self { task, conn }))
        } else {
            let _ = conn.close().await;
            Ok(Err(Busy { task }))
        }
    }

    /// Whether some session holds the lock of `task` now (a run is in progress somewhere).
    pub async fn is_held(pool: &PgPool, task: &'static str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0))",
        )
        .bind(key(task))
        .fetch_one(pool)
        .await
    }

    /// The connection holding the lock, for the run's own bookkeeping.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub async fn release(mut self) {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(key(self.task))
            .execute(&mut self.conn)
            .await;
        if let Err(e) = unlocked {
            tracing::warn!(task = self.task, error = %e, "cannot release the task lock; closing its connection");
        }
        let _ = self.conn.close().await;
    }
}

fn key(task: &str) -> String {
    format!("billhook.schedule.{task}")
}
