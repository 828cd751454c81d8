//! The summary as the email shows it: sections of figures, each beside the same day a week
//! before, the events by type, the first few failures with links to the console, and the
//! hourly series the chart is drawn from. Ids, counts and amounts only: no customer, card or
//! payment method details, no secret.

use std::collections::BTreeSet;

use reqwest::Url;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::figures::{self, Day, Figures, Money};
use crate::alerts::message::link;

fn count(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn money(amount: i64, currency: &str) -> String {
    let upper = currency.to_ascii_uppercase();
    let decimals = crate::stripe::money::decimals(&upper);
    if decimals == 0 {
        return format!("{} {upper}", count(amount));
    }
    let scale = 10_i64.pow(decimals);
    format!(
        "{}.{:0width$} {upper}",
        count(amount / scale),
        (amount % scale).abs(),
        width = decimals as usize
    )
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "—".to_owned(), |s| format!("{s:.2} s"))
}

fn row(label: impl Into<String>, value: String, before: String) -> Value {
    json!({ "label": label.into(), "value": value, "before": before })
}

fn counted(label: &str, now: i64, before: i64) -> Value {
    row(label, count(now), count(before))
}

fn money_rows(label: &str, unit: &str, now: &[Money], before: &[Money]) -> Vec<Value> {
    let currencies: BTreeSet<&str> = now
        .iter()
        .chain(before)
        .map(|m| m.currency.as_str())
        .collect();
    let shown = |list: &[Money], currency: &str| {
        list.iter().find(|m| m.currency == currency).map_or_else(
            || "—".to_owned(),
            |m| {
                let plural = if m.count == 1 { "" } else { "s" };
                format!(
                    "{}, {} {unit}{plural}",
                    money(m.amount, currency),
                    count(m.count)
                )
            },
        )
    };
    if currencies.is_empty() {
        return vec![row(label, "—".to_owned(), "—".to_owned())];
    }
    currencies
        .into_iter()
        .map(|c| {
            row(
                format!("{label}, {}", c.to_ascii_uppercase()),
                shown(now, c),
                shown(before, c),
            )
        })
        .collect()
}

fn by_reason(f: &Figures) -> String {
    if f.rejected.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = f.rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
    parts.join(", ")
}

fn sections(f: &Figures, b: &Figures) -> Value {
    let outcome = |fig: &Figures, s: &str| fig.outcomes.get(s).copied().unwrap_or(0);
    let mut webhooks = vec![counted(
        "Events received",
        f.events_received,
        b.events_received,
    )];
    for (status, label) in [
        ("applied", "Applied"),
        ("ignored", "Ignored (types Billhook does not handle)"),
        ("stale", "Stale (older than what was applied)"),
        ("failed", "Still being retried"),
        ("dead", "Dead-lettered"),
        ("received", "Not processed yet"),
    ] {
        webhooks.push(counted(label, outcome(f, status), outcome(b, status)));
    }
    let mut rejected = counted("Rejected deliveries", f.rejected_total, b.rejected_total);
    if let Some(detail) = Some(by_reason(f)).filter(|d| !d.is_empty()) {
        rejected["detail"] = detail.into();
    }
    webhooks.push(rejected);
    webhooks.push(counted(
        "Failed processing attempts",
        f.event_failures,
        b.event_failures,
    ));
    webhooks.push(counted(
        "New dead letters (all kinds)",
        f.dead_letters_total,
        b.dead_letters_total,
    ));
    webhooks.push(row(
        "Processing lag p50 / p99",
        format!(
            "{} / {}",
            seconds(f.lag_p50_seconds),
            seconds(f.lag_p99_seconds)
        ),
        format!(
            "{} / {}",
            seconds(b.lag_p50_seconds),
            seconds(b.lag_p99_seconds)
        ),
    ));
    let mut money = money_rows("Paid", "payment", &f.paid, &b.paid);
    money.extend(money_rows("Refunded", "refund", &f.refunded, &b.refunded));
    money.push(counted("Orders paid", f.orders_paid, b.orders_paid));
    money.push(counted("Orders failed", f.orders_failed, b.orders_failed));
    money.push(counted(
        "Orders refunded",
        f.orders_refunded,
        b.orders_refunded,
    ));
    json!([
        { "title": "Webhooks", "rows": webhooks },
        { "title": "Money", "rows": money },
        { "title": "Subscriptions and dunning", "rows": [
            counted("New subscriptions", f.subscriptions_new, b.subscriptions_new),
            counted("Cancelled subscriptions", f.subscriptions_cancelled, b.subscriptions_cancelled),
            counted("Dunning runs opened", f.dunning_opened, b.dunning_opened),
            counted("Dunning runs recovered", f.dunning_recovered, b.dunning_recovered),
            counted("Subscriptions cancelled by dunning", f.dunning_cancelled, b.dunning_cancelled),
        ]},
        { "title": "Emails", "rows": [
            counted("Emails sent", f.emails_sent, b.emails_sent),
            counted("Emails failed (dead-lettered)", f.emails_failed, b.emails_failed),
        ]},
        { "title": "Operations", "rows": [
            counted("Reconciliation runs", f.reconcile_runs, b.reconcile_runs),
            counted("Reconciliation runs failed", f.reconcile_failed, b.reconcile_failed),
            counted("Events recovered by reconciliation", f.reconcile_recovered, b.reconcile_recovered),
            counted("Alerts opened", f.alerts_opened, b.alerts_opened),
            counted("Alerts resolved", f.alerts_resolved, b.alerts_resolved),
        ]},
    ])
}

/// The email's variables for `day`: its figures, the week before's, the chart's series.
pub async fn build(pool: &PgPool, day: &Day, console: Option<&Url>) -> sqlx::Result<Value> {
    let before = day.week_before();
    let (f, b) = tokio::try_join!(figures::figures(pool, day), figures::figures(pool, &before))?;
    let hourly = figures::hourly(pool, day).await?;
    let (failed, dead) = figures::samples(pool, day).await?;
    let by_type: Vec<Value> = f
        .by_type
        .iter()
        .map(|t| {
            let before = b
                .by_type
                .iter()
                .find(|x| x.event_type == t.event_type)
                .map_or(0, |x| x.total);
            let problems: i64 = ["failed", "dead"]
                .iter()
                .filter_map(|s| t.by_status.get(*s))
                .sum();
            json!({ "type": t.event_type, "total": count(t.total), "before": count(before),
                    "applied": count(t.by_status.get("applied").copied().unwrap_or(0)),
                    "problems": count(problems) })
        })
        .collect();
    let failed: Vec<Value> = failed
        .iter()
        .map(|id| json!({ "label": format!("event {id}"), "url": link(console, &format!("/events/{id}")) }))
        .collect();
    let dead: Vec<Value> = dead
        .iter()
        .map(|(job, kind)| {
            json!({ "label": format!("{kind} job {job}"),
                    "url": link(console, &format!("/dead-letters?kind={kind}")) })
        })
        .collect();
    Ok(json!({
        "date": day.date.to_string(),
        "weekday": day.date.format("%A").to_string(),
        "zone": day.zone.name(),
        "compared_with": before.date.to_string(),
        "headline": { "received": count(f.events_received),
                      "dead": count(f.outcomes.get("dead").copied().unwrap_or(0)) },
        "sections": sections(&f, &b),
        "by_type": by_type,
        "failed_events": failed,
        "dead_letters": dead,
        "hourly": hourly,
        "console_url": console.map(Url::as_str),
        "figures": f,
        "figures_week_before": b,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_money_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(money(123456, "usd"), "1,234.56 USD");
        assert_eq!(money(5000, "jpy"), "5,000 JPY");
        assert_eq!(money(1500, "kwd"), "1.500 KWD");
    }
}
