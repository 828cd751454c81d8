//! The account that ends a story: the rows Billhook wrote for the story's ids (order,
//! subscription, invoices, refunds, ledger, dunning run), what it set off (`follow_ups`:
//! emails, notices, dead letters), and the commands that look further.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sqlx::PgPool;

use super::{Database, Sent, Telling, follow_ups};
use crate::objects::Cast;

/// `amount` minor units of `currency` as people write it: `50.00 USD`. Points stay whole.
pub fn money(amount: i64, currency: &str) -> String {
    if currency == "points" {
        return format!("{amount} points");
    }
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    format!(
        "{sign}{}.{:02} {}",
        abs / 100,
        abs % 100,
        currency.to_uppercase()
    )
}

/// Prints what Billhook did with the story's events and ids.
pub async fn print(db: &Database, cast: &Cast, sent: &[Sent], how: &Telling) -> anyhow::Result<()> {
    let pool = &db.pool;
    let events: Vec<String> = sent.iter().map(|s| s.id.clone()).collect();
    let mut out = String::from("What Billhook did\n");
    events_line(pool, &events, &mut out).await?;
    orders(pool, cast, &mut out).await?;
    subscription(pool, cast, &mut out).await?;
    invoices_and_refunds(pool, cast, &mut out).await?;
    ledger(pool, cast, &mut out).await?;
    let runs = dunning(pool, cast, &mut out).await?;
    let mail_files =
        follow_ups::emails(pool, cast, &events, how.email_dir.as_deref(), &mut out).await?;
    follow_ups::notices(pool, &events, &mut out).await?;
    follow_ups::dead_letters(pool, cast, &events, &mut out).await?;

    out.push_str("\nLook further\n");
    if let Some(file) = &db.url_file {
        let _ = writeln!(
            out,
            "  export DATABASE_URL=\"$(cat {})\"",
            shown(file).display()
        );
    }
    let _ = writeln!(
        out,
        "  psql \"$DATABASE_URL\" -c \"SELECT template, status, subject FROM emails WHERE recipient = '{}'\"",
        cast.email
    );
    let worker = &how.worker_command;
    if let Some(order) = order_key(pool, cast).await? {
        let _ = writeln!(out, "  {worker} orders show {order}");
    }
    for invoice in &runs {
        let _ = writeln!(out, "  {worker} dunning show {invoice}");
    }
    let _ = writeln!(
        out,
        "  {worker} ledger balance --customer {}",
        cast.customer
    );
    let _ = writeln!(out, "  {worker} dead-letters list");
    if let (false, Some(dir)) = (mail_files, &how.email_dir) {
        let _ = writeln!(out, "  ls -t {} | head", shown(dir).display());
    }
    print!("{out}");
    Ok(())
}

/// The story's order, by its reference (or id, when Checkout created it without one).
async fn order_key(pool: &PgPool, cast: &Cast) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar("SELECT coalesce(reference, id) FROM orders WHERE checkout_ref = $1")
        .bind(&cast.session)
        .fetch_optional(pool)
        .await
        .context("cannot read orders")
}

/// A label and its lines, the later ones indented under the first.
pub(super) fn section(out: &mut String, label: &str, lines: &[String]) {
    for (n, line) in lines.iter().enumerate() {
        let label = if n == 0 { label } else { "" };
        let _ = writeln!(out, "  {label:<13} {line}");
    }
}

async fn events_line(pool: &PgPool, events: &[String], out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, type, status, last_error FROM webhook_events WHERE id = ANY($1)
          ORDER BY array_position($1, id)",
    )
    .bind(events)
    .fetch_all(pool)
    .await
    .context("cannot read webhook_events")?;
    let applied = rows.iter().filter(|r| r.2 == "applied").count();
    let mut lines = vec![format!("{} sent, {applied} applied", events.len())];
    for (id, event_type, status, error) in rows.iter().filter(|r| r.2 != "applied") {
        let why = match (status.as_str(), error) {
            // The worker applies events concurrently: a later one got there first.
            ("stale", _) => {
                " (a newer event about the same object was applied first; it changes nothing)"
                    .to_owned()
            }
            (_, Some(error)) => format!(": {error}"),
            (_, None) => String::new(),
        };
        lines.push(format!("{event_type} {id} {status}{why}"));
    }
    section(out, "events", &lines);
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Order {
    id: String,
    /// The application's reference, else the Checkout Session.
    name: String,
    status: String,
    amount: Option<i64>,
    currency: Option<String>,
    amount_refunded: i64,
    created_by: String,
}

async fn orders(pool: &PgPool, cast: &Cast, out: &mut String) -> anyhow::Result<()> {
    let rows: Vec<Order> = sqlx::query_as(
        "SELECT id, coalesce(reference, checkout_ref) AS name, status, amount, currency,
                amount_refunded, created_by
           FROM orders WHERE reference = $1 OR checkout_ref = $2 OR payment_intent_id = $3
          ORDER BY created_at",
    )
    .bind(&cast.order_reference)
    .bind(&cast.session)
    .bind(&cast.payment_intent)
    .fetch_all(pool)
    .await
    .context("cannot read orders")?;
    let lines: Vec<String> = rows
        .into_iter()
        .map(|order| {
            let currency = order.currency.unwrap_or_default();
            let mut line = format!("{} ({}): {}", order.name, order.id, order.status);
            if let Some(amount) = order.amount {
                let _ = write!(line, ", {}", money(amount, &currency));
            }
            if order.amount_refunded > 0 {
                let _ = write!(
                    line,
                    ", {} refunded",
                    money(order.amount_refunded, &currency)
                );
            }
            line.push_str(if order.created_by == "checkout" {
                "; created from the Checkout Session"
            } else {
                "; created by the application"
            });
            line
        })
        .collect();
    if !lines.is_empty() {
        section(out, "order", &lines);
    }
    Ok(())
}

async fn subscription(pool: &PgPool, cast: &Cast, out: &mut String) -> anyhow::Result<()> {
    let row: Option<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
        "SELECT s.status,
                to_char(s.current_period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                to_char(s.trial_end AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                EXISTS (SELECT 1 FROM entitlements e WHERE e.subscription_id = s.id)
           FROM subscriptions s WHERE s.id = $1",
    )
    .bind(&cast.subscription)
    .fetch_optional(pool)
    .await
    .context("cannot read subscriptions")?;
    let Some((status, period_end, trial_end, entitled)) = row else {
        return Ok(());
    };
    let mut line = format!("{} {status}", cast.subscription);
    if let Some(end) = period_end {
        let _ = write!(line, ", period ends {end}");
    }
    if let Some(end) = trial_end {
        let _ = write!(line, ", trial ends {end}");
    }
    line.push_str(if entitled {
        "; entitled (entitlements)"
    } else {
        "; not entitled"
    });
    section(out, "subscription", &[line]);
    Ok(())
}

async fn invoices_and_refunds(pool: &PgPool, cast: &Cast, out: &mut String) -> anyhow::Result<()> {
    let invoices: Vec<(String, Option<String>, i64, i64, String, i32)> = sqlx::query_as(
        "SELECT id, status, amount_due, amount_paid, currency, attempt_count
           FROM invoices WHERE customer_id = $1 ORDER BY id",
    )
    .bind(&cast.customer)
    .fetch_all(pool)
    .await
    .context("cannot read invoices")?;
    let lines: Vec<String> = invoices
        .into_iter()
        .map(|(id, status, due, paid, currency, attempts)| {
            let status = status.unwrap_or_else(|| "?".to_owned());
            format!(
                "{id} {status}: {} due, {} paid, {attempts} attempt(s)",
                money(due, &currency),
                money(paid, &currency)
            )
        })
        .collect();
    if !lines.is_empty() {
        section(out, "invoices", &lines);
    }
    let refunds: Vec<(String, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT id, amount, currency, status FROM refunds WHERE charge_id = $1 ORDER BY id",
    )
    .bind(&cast.charge)
    .fetch_all(pool)
    .await
    .context("cannot read refunds")?;
    let lines: Vec<String> = refunds
        .into_iter()
        .map(|(id, amount, currency, status)| {
            format!(
                "{id} {}: {}",
                status.unwrap_or_default(),
                money(amount, &currency)
            )
        })
        .collect();
    if !lines.is_empty() {
        section(out, "refunds", &lines);
    }
    Ok(())
}

async fn ledger(pool: &PgPool, cast: &Cast, out: &mut String) -> anyhow::Result<()> {
    let entries: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT kind, amount, unit, source FROM ledger_entries WHERE customer_id = $1 ORDER BY id",
    )
    .bind(&cast.customer)
    .fetch_all(pool)
    .await
    .context("cannot read ledger_entries")?;
    if entries.is_empty() {
        return Ok(());
    }
    let balances: Vec<(String, i64)> = sqlx::query_as(
        "SELECT unit, balance::bigint FROM ledger_balances WHERE customer_id = $1 ORDER BY unit",
    )
    .bind(&cast.customer)
    .fetch_all(pool)
    .await
    .context("cannot read ledger_balances")?;
    let mut lines: Vec<String> = entries
        .into_iter()
        .map(|(kind, amount, unit, source)| {
            let sign = if amount > 0 { "+" } else { "" };
            format!("{kind} {sign}{} ({source})", money(amount, &unit))
        })
        .collect();
    let balance: Vec<String> = balances.iter().map(|(unit, b)| money(*b, unit)).collect();
    lines.push(format!(
        "balance of {}: {}",
        cast.customer,
        balance.join(", ")
    ));
    section(out, "ledger", &lines);
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Run {
    id: String,
    invoice_id: String,
    state: String,
    steps_done: i32,
    stop_reason: Option<String>,
    next_step_at: Option<String>,
    /// Its next step is dead-lettered.
    stuck: bool,
}

/// Prints the customer's dunning runs; returns their invoices.
async fn dunning(pool: &PgPool, cast: &Cast, out: &mut String) -> anyhow::Result<Vec<String>> {
    let runs: Vec<Run> = sqlx::query_as(
        "SELECT id, invoice_id, state, steps_done, stop_reason,
                to_char(next_step_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' AS next_step_at,
                EXISTS (SELECT 1 FROM dead_letters d
                         WHERE d.kind = 'dunning_step' AND d.requeued_at IS NULL
                           AND d.argument->>'run_id' = r.id
                           AND (d.argument->>'step')::int = r.steps_done) AS stuck
           FROM dunning_runs r WHERE customer_id = $1 ORDER BY started_at",
    )
    .bind(&cast.customer)
    .fetch_all(pool)
    .await
    .context("cannot read dunning_runs")?;
    let steps = billhook_worker::dunning::STEPS;
    let lines: Vec<String> = runs
        .iter()
        .map(|run| {
            let mut line = format!(
                "{} for {}: {}, {} of {} steps done",
                run.id,
                run.invoice_id,
                run.state,
                run.steps_done,
                steps.len()
            );
            if let Some(reason) = &run.stop_reason {
                let _ = write!(line, " ({reason})");
            }
            let upcoming = usize::try_from(run.steps_done)
                .ok()
                .and_then(|d| steps.get(d));
            match (&run.next_step_at, upcoming, run.state.as_str(), run.stuck) {
                (_, Some(step), "active", true) => {
                    let _ = write!(line, "; its {step} step is dead-lettered (below)");
                }
                (Some(next), Some(step), "active", false) => {
                    let _ = write!(line, "; next: {step} at {next}");
                }
                _ => {}
            }
            line
        })
        .collect();
    if !lines.is_empty() {
        section(out, "dunning", &lines);
    }
    Ok(runs.into_iter().map(|r| r.invoice_id).collect())
}

/// `path` relative to the current directory when it is under it.
pub(super) fn shown(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}
