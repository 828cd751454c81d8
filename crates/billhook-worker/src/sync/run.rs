//! A sync run's records: `sync_runs` (one row per run: its types, `created_since`, outcome) and
//! `sync_progress` (per run and type: the cursor of the last committed page, counts, done),
//! and the choice between resuming a run and starting a new one.
//!
//! Called with the sync's lock held (see [`super::sync`]), so a run still marked `running` is
//! one whose process died.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::types::ObjectType;
use super::{CreatedSince, Request};

/// A run's progress on one type, as last committed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TypeProgress {
    pub object_type: String,
    pub cursor: Option<String>,
    pub fetched: i64,
    pub written: i64,
    pub kept: i64,
    pub done: bool,
}

/// The run this sync carries out: new, or resumed.
#[derive(Debug)]
pub struct OpenRun {
    pub id: i64,
    pub resumed: bool,
    /// `created[gte]` of every listing, Unix seconds.
    pub created_gte: Option<i64>,
    /// One per type of the request, in its order.
    pub progress: Vec<(ObjectType, TypeProgress)>,
}

impl OpenRun {
    /// What `mirror rows' last_event_id` and the audit name as the source of a write.
    pub fn source(&self) -> String {
        format!("sync:{}", self.id)
    }

    /// For a resumed run: from where each type continues.
    pub fn resume_note(&self) -> Option<String> {
        if !self.resumed {
            return None;
        }
        let each: Vec<String> = self
            .progress
            .iter()
            .map(|(t, p)| match (&p.cursor, p.done) {
                (_, true) => format!("{} done", t.name()),
                (Some(cursor), false) => format!("{} after {cursor}", t.name()),
                (None, false) => format!("{} from the start", t.name()),
            })
            .collect();
        Some(format!(
            "resuming sync run {} where it stopped: {}",
            self.id,
            each.join(", ")
        ))
    }
}

/// Resumes the latest run with the same types and `created_since` unless it succeeded (or
/// `fresh` is asked), else records a new one. Runs left `running` by a dead process and not
/// resumed are marked failed.
pub async fn open(conn: &mut PgConnection, request: &Request) -> sqlx::Result<OpenRun> {
    let types: Vec<&str> = request.types.iter().map(|t| t.name()).collect();
    let (ago, at) = match request.created_since {
        Some(CreatedSince::Ago(d)) => (Some(d.as_secs_f64()), None),
        Some(CreatedSince::At(t)) => (None, Some(t)),
        None => (None, None),
    };
    // A duration counts back from the run's start, so a resumed run keeps its window.
    let same: Option<(i64, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT id, outcome, created_since FROM sync_runs
          WHERE types = $1::text[]
            AND CASE WHEN $2::float8 IS NOT NULL
                       THEN created_since = started_at - make_interval(secs => $2::float8)
                     WHEN $3::timestamptz IS NOT NULL THEN created_since = $3::timestamptz
                     ELSE created_since IS NULL END
          ORDER BY id DESC LIMIT 1",
    )
    .bind(&types)
    .bind(ago)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let resume = same.filter(|(_, outcome, _)| outcome != "succeeded" && !request.fresh);
    sqlx::query(
        "UPDATE sync_runs SET outcome = 'failed', finished_at = now(),
                error = 'interrupted: its process stopped before the run finished'
          WHERE outcome = 'running' AND id IS DISTINCT FROM $1",
    )
    .bind(resume.as_ref().map(|(id, _, _)| *id))
    .execute(&mut *conn)
    .await?;
    let (id, created_since, resumed) = match resume {
        Some((id, _, created_since)) => {
            sqlx::query(
                "UPDATE sync_runs SET outcome = 'running', finished_at = NULL, error = NULL
                  WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            (id, created_since, true)
        }
        None => {
            let (id, created_since): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
                "INSERT INTO sync_runs (types, created_since)
                 VALUES ($1::text[], CASE WHEN $2::float8 IS NOT NULL
                                          THEN now() - make_interval(secs => $2::float8)
                                          ELSE $3::timestamptz END)
                 RETURNING id, created_since",
            )
            .bind(&types)
            .bind(ago)
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            (id, created_since, false)
        }
    };
    sqlx::query(
        "INSERT INTO sync_progress (run_id, object_type) SELECT $1, unnest($2::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&types)
    .execute(&mut *conn)
    .await?;
    let rows: Vec<TypeProgress> = sqlx::query_as(
        "SELECT object_type, cursor, fetched, written, kept, done FROM sync_progress
          WHERE run_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let progress = request
        .types
        .iter()
        .filter_map(|t| {
            let row = rows.iter().find(|r| r.object_type == t.name())?;
            Some((*t, row.clone()))
        })
        .collect();
    Ok(OpenRun {
        id,
        resumed,
        // `created[gte]` is whole seconds: rounding down lists the boundary second too.
        created_gte: created_since.map(|t| t.timestamp()),
        progress,
    })
}

/// Records the run's end: succeeded, or failed with `error`.
pub async fn finish(conn: &mut PgConnection, id: i64, error: Option<&str>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sync_runs SET finished_at = now(), error = $2,
                outcome = CASE WHEN $2 IS NULL THEN 'succeeded' ELSE 'failed' END
          WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the run's `object_type` done: a resumed run skips it.
pub async fn type_done(
    conn: &mut PgConnection,
    id: i64,
    object_type: ObjectType,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sync_progress SET done = true, updated_at = now()
          WHERE run_id = $1 AND object_type = $2",
    )
    .bind(id)
    .bind(object_type.name())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the cursor of `object_type` without writing objects: the payment methods of a
/// customer who has none.
pub async fn move_cursor(
    conn: &mut PgConnection,
    id: i64,
    object_type: ObjectType,
    cursor: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sync_progress SET cursor = $3, updated_at = now()
          WHERE run_id = $1 AND object_type = $2",
    )
    .bind(id)
    .bind(object_type.name())
    .bind(cursor)
    .execute(conn)
    .await?;
    Ok(())
}
