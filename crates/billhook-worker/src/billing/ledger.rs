//! The ledger: credits for paid checkouts and invoices, debits for refunds, manual entries.
//! One entry per (source, kind), so a redelivered or replayed event never counts twice;
//! balances are sums (the `ledger_balances` view).

use std::str::FromStr;

use sqlx::PgConnection;

use crate::stripe::money::decimals;

use crate::queue::JobError;

/// How an amount paid becomes ledger units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerRule {
    /// The amount in the currency's minor unit (cents), per currency: a prepaid balance.
    MinorUnits,
    /// Whole points per whole currency unit, rounded down: a loyalty scheme.
    PointsPerUnit(i64),
    /// No ledger entries from payments (manual entries still work).
    Off,
}

impl FromStr for LedgerRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "minor-units" => Ok(Self::MinorUnits),
            "off" => Ok(Self::Off),
            _ => match s.strip_prefix("points:").map(str::parse::<i64>) {
                Some(Ok(n)) if n > 0 => Ok(Self::PointsPerUnit(n)),
                _ => Err(format!(
                    "`{s}` is not a ledger rule: use minor-units, points:N (N a positive whole number) or off"
                )),
            },
        }
    }
}

impl LedgerRule {
    /// The ledger amount and unit for `minor` units of `currency`; `None` when the rule is off.
    pub fn convert(self, minor: i64, currency: &str) -> Option<(i64, String)> {
        match self {
            Self::MinorUnits => Some((minor, currency.to_ascii_lowercase())),
            Self::PointsPerUnit(per_unit) => {
                let whole = minor / 10_i64.pow(decimals(currency));
                Some((whole.saturating_mul(per_unit), "points".to_owned()))
            }
            Self::Off => None,
        }
    }
}

/// Where an entry comes from.
pub struct Entry<'a> {
    pub customer_id: &'a str,
    pub source: &'a str,
    pub order_id: Option<&'a str>,
    pub event_id: &'a str,
}

/// Credits `minor` units of `currency` for a payment, once per (source, kind). Returns whether
/// an entry was written.
pub async fn credit(
    conn: &mut PgConnection,
    rule: LedgerRule,
    kind: &str,
    entry: &Entry<'_>,
    minor: i64,
    currency: &str,
) -> Result<bool, JobError> {
    let Some((amount, unit)) = rule.convert(minor, currency) else {
        return Ok(false);
    };
    if amount <= 0 {
        return Ok(false);
    }
    let written = sqlx::query(
        "INSERT INTO ledger_entries (customer_id, kind, source, amount, unit, order_id, event_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (source, kind) DO NOTHING",
    )
    .bind(entry.customer_id)
    .bind(kind)
    .bind(entry.source)
    .bind(amount)
    .bind(unit)
    .bind(entry.order_id)
    .bind(entry.event_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(written == 1)
}

/// Brings the refund debits of one charge (`entry.source` is the charge id) to the charge's
/// refunded total. Refund totals only grow, so debiting the difference to the largest total
/// seen reaches the same sum in any delivery order. Returns the amount debited now.
pub async fn debit_refunds(
    conn: &mut PgConnection,
    rule: LedgerRule,
    entry: &Entry<'_>,
    refunded_minor: i64,
    currency: &str,
) -> Result<i64, JobError> {
    let Some((target, unit)) = rule.convert(refunded_minor, currency) else {
        return Ok(0);
    };
    let prefix = format!("{}:refunded:", entry.source);
    let debited: i64 = sqlx::query_scalar(
        "SELECT coalesce(-sum(amount), 0)::bigint FROM ledger_entries
          WHERE kind = 'refund_debit' AND left(source, length($1)) = $1",
    )
    .bind(&prefix)
    .fetch_one(&mut *conn)
    .await?;
    let step = target - debited;
    if step <= 0 {
        return Ok(0);
    }
    sqlx::query(
        "INSERT INTO ledger_entries (customer_id, kind, source, amount, unit, order_id, event_id)
         VALUES ($1, 'refund_debit', $2, $3, $4, $5, $6) ON CONFLICT (source, kind) DO NOTHING",
    )
    .bind(entry.customer_id)
    .bind(format!("{}:refunded:{refunded_minor}", entry.source))
    .bind(-step)
    .bind(unit)
    .bind(entry.order_id)
    .bind(entry.event_id)
    .execute(conn)
    .await?;
    Ok(step)
}

/// What `adjust` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjusted {
    /// A new entry, with its id.
    Added(i64),
    /// The key's entry existed already, the same in every way: nothing changed.
    AlreadyAdded(i64),
}

/// A manual entry, recorded with who and why. With `key` it is added once: running the same
/// adjustment again (a retried script, a command whose output was lost) changes nothing, and
/// the same key for a different adjustment is refused. Without a key every call adds one.
pub async fn adjust(
    conn: &mut PgConnection,
    customer_id: &str,
    amount: i64,
    unit: &str,
    reason: &str,
    by: &str,
    key: Option<&str>,
) -> anyhow::Result<Adjusted> {
    let source = match key {
        Some(key) => format!("manual:key:{key}"),
        None => format!("manual:{}", ulid::Ulid::generate()),
    };
    let added: Option<i64> = sqlx::query_scalar(
        "INSERT INTO ledger_entries (customer_id, kind, source, amount, unit, reason, created_by)
         VALUES ($1, 'manual', $2, $3, $4, $5, $6)
         ON CONFLICT (source, kind) DO NOTHING RETURNING id",
    )
    .bind(customer_id)
    .bind(&source)
    .bind(amount)
    .bind(unit)
    .bind(reason)
    .bind(by)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = added else {
        let (id, same_customer, same_amount, same_unit): (i64, String, i64, String) =
            sqlx::query_as(
                "SELECT id, customer_id, amount, unit FROM ledger_entries
                  WHERE source = $1 AND kind = 'manual'",
            )
            .bind(&source)
            .fetch_one(&mut *conn)
            .await?;
        anyhow::ensure!(
            (same_customer.as_str(), same_amount, same_unit.as_str())
                == (customer_id, amount, unit),
            "--key {} was used for a different adjustment (entry {id}: {same_amount} {same_unit} for {same_customer}); nothing changed",
            key.unwrap_or_default()
        );
        return Ok(Adjusted::AlreadyAdded(id));
    };
    super::audit::record_by(
        conn,
        by,
        "ledger",
        customer_id,
        "manual_entry",
        serde_json::json!({ "entry": id, "amount": amount, "unit": unit, "reason": reason, "key": key }),
    )
    .await?;
    Ok(Adjusted::Added(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_refuse_nonsense() {
        assert_eq!("minor-units".parse(), Ok(LedgerRule::MinorUnits));
        assert_eq!("points:10".parse(), Ok(LedgerRule::PointsPerUnit(10)));
        assert_eq!("off".parse(), Ok(LedgerRule::Off));
        assert!("points:0".parse::<LedgerRule>().is_err());
        assert!("points:x".parse::<LedgerRule>().is_err());
        assert!("cents".parse::<LedgerRule>().is_err());
    }

    #[test]
    fn points_count_whole_currency_units() {
        let rule = LedgerRule::PointsPerUnit(10);
        assert_eq!(rule.convert(1999, "usd"), Some((190, "points".into())));
        assert_eq!(rule.convert(1999, "JPY"), Some((19990, "points".into())));
        assert_eq!(rule.convert(1999, "kwd"), Some((10, "points".into())));
        assert_eq!(
            LedgerRule::MinorUnits.convert(1999, "EUR"),
            Some((1999, "eur".into()))
        );
        assert_eq!(LedgerRule::Off.convert(1999, "usd"), None);
    }
}
