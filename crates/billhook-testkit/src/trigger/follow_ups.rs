//! What a story's events set off, for its account: the emails (with the .eml file of each
//! when the worker writes them to a directory), the notices to the application, and the dead
//! letters among the jobs that did this work.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sqlx::PgPool;

use super::account::{section, shown};
use crate::objects::Cast;

#[derive(sqlx::FromRow)]
struct Email {
    id: String,
    template: String,
    recipient: Option<String>,
    status: String,
    last_error: Option<String>,
}

/// Prints the story's emails, each with its file when the worker writes them to `email_dir`;
/// returns whether any file was found.
pub(super) async fn emails(
    pool: &PgPool,
    cast: &Cast,
    events: &[String],
    email_dir: Option<&Path>,
    out: &mut String,
) -> anyhow::Result<bool> {
    let rows: Vec<Email> = sqlx::query_as(
        "SELECT id, template, recipient, status, last_error FROM emails
          WHERE recipient = $1 OR event_id = ANY($2) ORDER BY created_at, id",
    )
    .bind(&cast.email)
    .bind(events)
    .fetch_all(pool)
    .await
    .context("cannot read emails")?;
    if rows.is_empty() {
        section(out, "emails", &["none".to_owned()]);
        return Ok(false);
    }
    let files = email_dir.map(eml_files).unwrap_or_default();
    let lines: Vec<String> = rows
        .iter()
        .map(|email| {
            let to = email.recipient.as_deref().unwrap_or("(no address known)");
            let mut line = format!("{:<22} to {to}: {}", email.template, email.status);
            match (
                email.status.as_str(),
                files.get(&email.id),
                &email.last_error,
            ) {
                ("sent", Some(file), _) => {
                    let _ = write!(line, ", {}", shown(file).display());
                }
                ("sent", None, _) | (_, _, None) => {}
                (_, _, Some(error)) => {
                    let _ = write!(line, " ({error})");
                }
            }
            line
        })
        .collect();
    section(out, "emails", &lines);
    let sent = rows.iter().filter(|r| r.status == "sent").count();
    if sent > 0 && files.is_empty() {
        let place = email_dir
            .map(|d| format!("not found in {}", shown(d).display()))
            .unwrap_or_else(|| "BILLHOOK_EMAIL_DIR unknown here".to_owned());
        section(
            out,
            "",
            &[format!(
                "(sent through SMTP, or written as .eml files to the worker's BILLHOOK_EMAIL_DIR: {place})"
            )],
        );
    }
    Ok(!files.is_empty())
}

/// The .eml files written in the last hour in `dir`, by the Billhook email id in their
/// Message-ID (`<eml_…@billhook>`).
fn eml_files(dir: &Path) -> HashMap<String, PathBuf> {
    let recent = SystemTime::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .filter(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= recent)
        })
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let id = text
                .lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("message-id")
                        .then(|| value.trim())
                })?
                .trim_start_matches('<')
                .split('@')
                .next()?
                .to_owned();
            Some((id, path))
        })
        .collect()
}

pub(super) async fn notices(
    pool: &PgPool,
    events: &[String],
    out: &mut String,
) -> anyhow::Result<()> {
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT type, status, count(*), max(last_error) FROM app_notifications
          WHERE event_id = ANY($1) GROUP BY type, status ORDER BY min(created_at), type",
    )
    .bind(events)
    .fetch_all(pool)
    .await
    .context("cannot read app_notifications")?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = rows
        .iter()
        .map(|(kind, status, n, error)| {
            let times = if *n > 1 {
                format!(" ×{n}")
            } else {
                String::new()
            };
            let error = match (status.as_str(), error) {
                ("pending" | "dead", Some(e)) => format!(" ({e})"),
                _ => String::new(),
            };
            format!("{kind}{times}: {status}{error}")
        })
        .collect();
    if rows.iter().all(|r| r.1 == "skipped") {
        lines.push("(recorded, not sent: the worker has no BILLHOOK_NOTIFY_URL)".to_owned());
    }
    section(out, "notices", &lines);
    Ok(())
}

pub(super) async fn dead_letters(
    pool: &PgPool,
    cast: &Cast,
    events: &[String],
    out: &mut String,
) -> anyhow::Result<()> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, job_id, error FROM dead_letters
          WHERE requeued_at IS NULL
            AND (event_id = ANY($1)
                 OR argument->>'run_id' IN (SELECT id FROM dunning_runs WHERE customer_id = $2)
                 OR argument->>'email_id' IN (SELECT id FROM emails WHERE recipient = $3))
          ORDER BY dead_at",
    )
    .bind(events)
    .bind(&cast.customer)
    .bind(&cast.email)
    .fetch_all(pool)
    .await
    .context("cannot read dead_letters")?;
    let lines: Vec<String> = rows
        .into_iter()
        .map(|(kind, job, error)| format!("{kind} {job}: {error}"))
        .collect();
    if !lines.is_empty() {
        section(out, "dead letters", &lines);
    }
    Ok(())
}
