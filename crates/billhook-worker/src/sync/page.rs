//! One listed page in one transaction: each object written through its handler's mirror write
//! under the object's advisory lock, an audit row per object written, and the type's progress
//! row (cursor and counts), all committed together. A page that failed leaves nothing behind,
//! so a resumed run lists it again.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::progress::Counts;
use super::types::ObjectType;
use crate::billing::audit::AuditEntry;
use crate::billing::effects;
use crate::billing::version::Write;
use crate::queue::JobError;
use crate::stripe::fields;

/// Attempts of a page's transaction that failed in a way a retry can cure (a deadlock with an
/// event holding one of the page's objects, a lost connection).
const ATTEMPTS: u32 = 3;

/// A page to write.
pub struct Page<'a> {
    pub run: i64,
    /// `sync:<run>`: the mirror rows' `last_event_id`.
    pub source: &'a str,
    pub object_type: ObjectType,
    pub objects: &'a [Value],
    /// When the page's request was sent, Unix seconds: the objects' event time.
    pub fetched_at: i64,
    /// The progress row's cursor once the page is committed.
    pub cursor: &'a str,
}

/// Writes `page`, retrying its transaction when a retry can help; the counts it committed.
pub async fn write(pool: &PgPool, page: &Page<'_>) -> anyhow::Result<Counts> {
    let mut attempt = 1;
    loop {
        match write_once(pool, page).await {
            Ok(counts) => return Ok(counts),
            Err(JobError::Retryable(e)) if attempt < ATTEMPTS => {
                tracing::warn!(object_type = page.object_type.name(), attempt, error = %format!("{e:#}"),
                    "writing a sync page failed; retrying");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            Err(JobError::Retryable(e) | JobError::Permanent(e)) => {
                return Err(e.context(format!(
                    "cannot write the page of {} ending at {}",
                    page.object_type.name(),
                    page.cursor
                )));
            }
        }
    }
}

async fn write_once(pool: &PgPool, page: &Page<'_>) -> Result<Counts, JobError> {
    let mut tx = pool.begin().await?;
    let mut audit = Vec::with_capacity(page.objects.len());
    for object in page.objects {
        let id = fields::required_str(object, "id")?;
        let written = write_object(&mut tx, page, id, object)
            .await
            .map_err(|e| match e {
                JobError::Permanent(e) => {
                    JobError::Permanent(e.context(format!("{} {id}", page.object_type.name())))
                }
                retryable => retryable,
            })?;
        if written {
            audit.push(AuditEntry {
                entity: page.object_type.entity().to_owned(),
                entity_id: id.to_owned(),
                action: "synced".to_owned(),
                detail: json!({ "run": page.run, "type": page.object_type.name() }),
            });
        }
    }
    let counts = Counts {
        fetched: page.objects.len() as i64,
        written: audit.len() as i64,
        kept: (page.objects.len() - audit.len()) as i64,
    };
    record(&mut tx, page, &audit, counts).await?;
    tx.commit()
        .await
        .context("commit")
        .map_err(JobError::Retryable)?;
    Ok(counts)
}

/// One object, under the lock ProcessEvent takes for its id (released at commit).
async fn write_object(
    conn: &mut PgConnection,
    page: &Page<'_>,
    id: &str,
    object: &Value,
) -> Result<bool, JobError> {
    effects::lock_key(conn, id).await?;
    let write = Write {
        object: Cow::Borrowed(object),
        version: page.object_type.version_at(object, page.fetched_at),
        fetched: true,
    };
    page.object_type
        .write_mirror(conn, id, &write, page.source)
        .await
}

/// The page's audit rows and its progress, in one statement.
async fn record(
    conn: &mut PgConnection,
    page: &Page<'_>,
    audit: &[AuditEntry],
    counts: Counts,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH audit AS (
             INSERT INTO audit_log (event_id, entity, entity_id, action, detail, actor)
             SELECT NULL, a.entity, a.entity_id, a.action, a.detail, 'sync'
               FROM jsonb_to_recordset($3) AS a(entity text, entity_id text, action text, detail jsonb))
         UPDATE sync_progress
            SET cursor = $4, fetched = fetched + $5, written = written + $6, kept = kept + $7,
                updated_at = now()
          WHERE run_id = $1 AND object_type = $2",
    )
    .bind(page.run)
    .bind(page.object_type.name())
    .bind(sqlx::types::Json(audit))
    .bind(page.cursor)
    .bind(counts.fetched)
    .bind(counts.written)
    .bind(counts.kept)
    .execute(conn)
    .await?;
    Ok(())
}
