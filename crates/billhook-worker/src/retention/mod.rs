//! Data retention: what finished work leaves behind is removed once past its time, in small
//! batches that never hold many rows locked, so ingest is not disturbed.
//!
//! - After BILLHOOK_EVENT_RETENTION (90 days, at least 30): the stored body and headers of
//!   events that are finished (applied, ignored, stale) are cleared (`pruned_at` set; the row
//!   and its id stay), and the rows of finished follow-up work go: sent and skipped emails,
//!   delivered and skipped notices, delivered alert posts, failed attempts of jobs that are not
//!   dead, dead letters that were requeued.
//! - After BILLHOOK_EVENT_ID_RETENTION (120 days): the pruned event rows themselves, so a late
//!   redelivery is recognised as a duplicate until then.
//! - Never: the mirror, orders, the ledger, the audit log, dunning runs, alert incidents, and
//!   anything unfinished (an event that failed keeps its body for its replay).
//!
//! Events are walked in `(received_at, id)` order from a watermark (`retention_state`), so each
//! pass reads only rows it has not seen, through the received_at index; an event that was
//! unfinished when the walk passed it keeps its body until its row goes.

pub mod settings;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::schedule::TaskLock;
use settings::RetentionSettings;

/// The task lock's name.
pub const TASK: &str = "retention";

/// Rows per statement: small enough that a batch holds its locks for milliseconds.
pub const BATCH: i64 = 1_000;

/// What one pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub event_bodies: u64,
    pub event_rows: u64,
    pub emails: u64,
    pub notices: u64,
    pub alert_posts: u64,
    pub job_failures: u64,
    pub dead_letters: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.event_bodies
            + self.event_rows
            + self.emails
            + self.notices
            + self.alert_posts
            + self.job_failures
            + self.dead_letters
    }
}

fn before(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
}

/// The pause between batches of a scheduled pass or the command's: a batch holds its row
/// locks for milliseconds, and the pause leaves the database to ingest between them.
pub const PAUSE: Duration = Duration::from_millis(50);

/// Which cut-off a sweep compares with.
#[derive(Clone, Copy)]
enum Cutoff {
    /// BILLHOOK_EVENT_RETENTION: bodies and finished follow-up work.
    Events,
    /// BILLHOOK_EVENT_ID_RETENTION: the rows of events.
    Ids,
}

/// Rows removed outright once past their time: `predicate` selects them (`$1` is the
/// cut-off), the same text for the deletion and for `--dry-run`'s count.
struct Sweep {
    what: &'static str,
    table: &'static str,
    key: &'static str,
    predicate: &'static str,
    order: &'static str,
    cutoff: Cutoff,
}

const SWEEPS: [Sweep; 6] = [
    Sweep {
        what: "event_rows",
        table: "webhook_events",
        key: "id",
        predicate: "received_at < $1 AND status IN ('applied', 'ignored', 'stale')",
        order: "ORDER BY received_at",
        cutoff: Cutoff::Ids,
    },
    Sweep {
        what: "emails",
        table: "emails",
        key: "id",
        predicate: "created_at < $1 AND status IN ('sent', 'skipped')",
        order: "ORDER BY created_at",
        cutoff: Cutoff::Events,
    },
    Sweep {
        what: "notices",
        table: "app_notifications",
        key: "id",
        predicate: "created_at < $1 AND status IN ('delivered', 'skipped')",
        order: "ORDER BY created_at",
        cutoff: Cutoff::Events,
    },
    Sweep {
        what: "alert_posts",
        table: "alert_posts",
        key: "id",
        predicate: "created_at < $1 AND status = 'delivered'",
        order: "",
        cutoff: Cutoff::Events,
    },
    Sweep {
        what: "job_failures",
        table: "job_failures",
        key: "id",
        predicate: "failed_at < $1 AND NOT EXISTS (SELECT 1 FROM dead_letters d \
                    WHERE d.job_id = job_failures.job_id AND d.requeued_at IS NULL)",
        order: "ORDER BY failed_at",
        cutoff: Cutoff::Events,
    },
    Sweep {
        what: "dead_letters",
        table: "dead_letters",
        key: "job_id",
        predicate: "requeued_at < $1",
        order: "",
        cutoff: Cutoff::Events,
    },
];

impl Pruned {
    fn add(&mut self, what: &str, n: u64) {
        match what {
            "event_bodies" => self.event_bodies += n,
            "event_rows" => self.event_rows += n,
            "emails" => self.emails += n,
            "notices" => self.notices += n,
            "alert_posts" => self.alert_posts += n,
            "job_failures" => self.job_failures += n,
            "dead_letters" => self.dead_letters += n,
            other => unreachable!("no retention sweep is called {other}"),
        }
    }

    /// Each kind with its count, in the order a pass removes them.
    pub fn kinds(&self) -> [(&'static str, u64); 7] {
        [
            ("event bodies cleared", self.event_bodies),
            ("event rows deleted (ids)", self.event_rows),
            ("emails", self.emails),
            ("notices", self.notices),
            ("alert posts", self.alert_posts),
            ("job failures", self.job_failures),
            ("requeued dead letters", self.dead_letters),
        ]
    }
}

/// Removes everything past its time at `now`, batch after batch, pausing `pause` between
/// batches. The caller holds the task lock (or is a test).
pub async fn prune(
    pool: &PgPool,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    pause: Duration,
) -> sqlx::Result<Pruned> {
    prune_reporting(pool, settings, now, pause, &mut |_| {}).await
}

/// [`prune`], calling `progress` with the running totals after every batch.
pub async fn prune_reporting(
    pool: &PgPool,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    pause: Duration,
    progress: &mut (dyn FnMut(&Pruned) + Send),
) -> sqlx::Result<Pruned> {
    let cutoff = before(now, settings.events);
    let id_cutoff = before(now, settings.ids);
    let mut pruned = Pruned::default();
    loop {
        let n = prune_bodies(pool, cutoff).await?;
        pruned.event_bodies += n.0;
        progress(&pruned);
        if n.1 {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    // Each statement removes up to BATCH rows; repeated while a batch comes back full.
    for sweep in &SWEEPS {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {predicate} \
             {order} LIMIT $2 FOR UPDATE SKIP LOCKED)",
            table = sweep.table,
            key = sweep.key,
            predicate = sweep.predicate,
            order = sweep.order,
        );
        let before = match sweep.cutoff {
            Cutoff::Events => cutoff,
            Cutoff::Ids => id_cutoff,
        };
        loop {
            let n = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(before)
                .bind(BATCH)
                .execute(pool)
                .await?
                .rows_affected();
            pruned.add(sweep.what, n);
            progress(&pruned);
            if n < BATCH as u64 {
                break;
            }
            tokio::time::sleep(pause).await;
        }
    }
    Ok(pruned)
}

/// What a pass at `now` would remove, counted without changing anything (`--dry-run`). Each
/// count reads the whole of what it selects: on a large first pass it takes seconds.
pub async fn pending(
    pool: &PgPool,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> sqlx::Result<Pruned> {
    let cutoff = before(now, settings.events);
    let id_cutoff = before(now, settings.ids);
    let mut pending = Pruned::default();
    // Bodies: from the watermark on, as the pass walks them.
    let bodies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events e \
          WHERE received_at < $1 AND status IN ('applied', 'ignored', 'stale') \
            AND pruned_at IS NULL \
            AND NOT EXISTS (SELECT 1 FROM retention_state r \
                             WHERE (e.received_at, e.id) <= (r.events_until, r.events_until_id))",
    )
    .bind(cutoff)
    .fetch_one(pool)
    .await?;
    pending.event_bodies = bodies as u64;
    for sweep in &SWEEPS {
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE {predicate}",
            table = sweep.table,
            predicate = sweep.predicate,
        );
        let before = match sweep.cutoff {
            Cutoff::Events => cutoff,
            Cutoff::Ids => id_cutoff,
        };
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .fetch_one(pool)
            .await?;
        pending.add(sweep.what, n as u64);
    }
    Ok(pending)
}

/// Clears the bodies of one batch of finished events received before `cutoff`, from the
/// watermark on, and moves the watermark past the batch. Returns (bodies cleared, done).
async fn prune_bodies(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<(u64, bool)> {
    let mut tx = pool.begin().await?;
    let mark: Option<(DateTime<Utc>, String)> =
        sqlx::query_as("SELECT events_until, events_until_id FROM retention_state FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
    let (from_at, from_id) = match &mark {
        Some((at, id)) => (Some(*at), id.as_str()),
        None => (None, ""),
    };
    let batch: Vec<(DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT received_at, id FROM webhook_events \
          WHERE received_at < $1 \
            AND ($2::timestamptz IS NULL OR (received_at, id) > ($2, $3)) \
          ORDER BY received_at, id LIMIT $4",
    )
    .bind(cutoff)
    .bind(from_at)
    .bind(from_id)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let Some((last_at, last_id)) = batch.last().cloned() else {
        return Ok((0, true));
    };
    let ids: Vec<String> = batch.into_iter().map(|(_, id)| id).collect();
    let cleared = sqlx::query(
        "UPDATE webhook_events SET body = ''::bytea, headers = '{}', pruned_at = now() \
          WHERE id = ANY($1) AND status IN ('applied', 'ignored', 'stale') AND pruned_at IS NULL",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "INSERT INTO retention_state (id, events_until, events_until_id) VALUES (true, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET events_until = excluded.events_until, \
                                        events_until_id = excluded.events_until_id, \
                                        updated_at = now()",
    )
    .bind(last_at)
    .bind(&last_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((cleared, (ids.len() as i64) < BATCH))
}

/// One scheduled pass: under the task lock, unless another process is pruning.
pub async fn tick(
    pool: &PgPool,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Pruned>> {
    let Ok(lock) = TaskLock::try_acquire(pool, TASK).await? else {
        return Ok(None);
    };
    let result = prune(pool, settings, now, PAUSE).await;
    lock.release().await;
    let pruned = result?;
    if pruned.total() > 0 {
        tracing::info!(
            event_bodies = pruned.event_bodies,
            event_rows = pruned.event_rows,
            emails = pruned.emails,
            notices = pruned.notices,
            alert_posts = pruned.alert_posts,
            job_failures = pruned.job_failures,
            dead_letters = pruned.dead_letters,
            "retention: finished work past its time removed"
        );
    }
    Ok(Some(pruned))
}
