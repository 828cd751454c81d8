//! The one way a mirror row is written: an upsert guarded by the row's version, so an older
//! event never overwrites what a newer one wrote ([`super::version`]).
//!
//! Every mirror table has `id`, `livemode`, `object`, `stripe_version`, `object_time`,
//! `last_event_id` and `updated_at`; a handler adds the columns of its own table, each with
//! what a conflict does to it, and gets back whether the row was written (`false`: the stored
//! row is newer, so the event is stale).

use serde_json::Value;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::{Arguments as _, Encode, PgConnection, Type};

use super::version::{Table, Write};
use crate::queue::JobError;
use crate::stripe::fields;

/// What an update (the row exists, and the event is not older) does to a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Takes the new value.
    Replace,
    /// Takes the new value unless it is NULL: a field the newer object leaves out is kept.
    KeepIfNull,
    /// Written when the row is created, never changed.
    InsertOnly,
    /// An SQL expression over `EXCLUDED` (the new row) and `t` (the stored one).
    Expr(&'static str),
}

/// One mirror row to write. Values are bound in the order the columns are added.
pub struct Upsert {
    table: Table,
    columns: Vec<(&'static str, OnConflict)>,
    args: PgArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Upsert {
    /// The row `id` of `table` from `write` (its object and version), caused by `event_id`,
    /// with the columns every mirror table has.
    pub fn new(table: Table, id: &str, write: &Write<'_>, event_id: &str) -> Self {
        let object = write.object.as_ref();
        let stripe_version = chrono::DateTime::from_timestamp(write.version.event_time, 0);
        Self {
            table,
            columns: Vec::with_capacity(20),
            args: PgArguments::default(),
            error: None,
        }
        .set("id", id, OnConflict::InsertOnly)
        .set(
            "livemode",
            fields::bool_at(object, "livemode").unwrap_or(false),
            OnConflict::InsertOnly,
        )
        .set("stripe_version", stripe_version, OnConflict::Replace)
        .set(
            "object_time",
            write.version.object_time,
            OnConflict::Replace,
        )
        .set("last_event_id", event_id, OnConflict::Replace)
    }

    /// Adds a column and its value.
    pub fn set<'t, T>(mut self, column: &'static str, value: T, on_conflict: OnConflict) -> Self
    where
        T: Encode<'t, Postgres> + Type<Postgres>,
    {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self.columns.push((column, on_conflict));
        self
    }

    /// Adds the `object` column: the whole Stripe object, replaced on update unless `on_conflict`
    /// says otherwise.
    pub fn object(self, object: &Value, on_conflict: OnConflict) -> Self {
        self.set("object", object, on_conflict)
    }

    /// The statement: insert, or update when the new version is at least the stored one.
    fn sql(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        let values: Vec<String> = (1..=self.columns.len()).map(|i| format!("${i}")).collect();
        let mut updates: Vec<String> = self
            .columns
            .iter()
            .filter_map(|(name, rule)| match rule {
                OnConflict::Replace => Some(format!("{name} = EXCLUDED.{name}")),
                OnConflict::KeepIfNull => {
                    Some(format!("{name} = coalesce(EXCLUDED.{name}, t.{name})"))
                }
                OnConflict::InsertOnly => None,
                OnConflict::Expr(expr) => Some(format!("{name} = {expr}")),
            })
            .collect();
        updates.push("updated_at = now()".to_owned());
        format!(
            "INSERT INTO {table} AS t ({names}) VALUES ({values})
             ON CONFLICT (id) DO UPDATE SET {updates}
             WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (t.stripe_version, t.object_time)
             RETURNING id",
            table = self.table.name(),
            names = names.join(", "),
            values = values.join(", "),
            updates = updates.join(", "),
        )
    }

    /// Writes the row. `false`: the stored row has a newer version, and nothing was written.
    pub async fn write(mut self, conn: &mut PgConnection) -> Result<bool, JobError> {
        if let Some(e) = self.error.take() {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "a value for {} cannot be encoded: {e}",
                self.table.name()
            )));
        }
        let sql = self.sql();
        let written: Option<String> = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), self.args)
            .fetch_optional(conn)
            .await?;
        Ok(written.is_some())
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::json;

    use super::*;
    use crate::billing::version::Version;

    #[test]
    fn the_statement_guards_the_update_with_the_version() {
        let object = json!({ "id": "cus_1", "livemode": false });
        let write = Write {
            object: Cow::Borrowed(&object),
            version: Version {
                event_time: 1,
                object_time: 2,
            },
            fetched: false,
        };
        let sql = Upsert::new(Table::Customers, "cus_1", &write, "evt_1")
            .set("email", Some("a@example.com"), OnConflict::KeepIfNull)
            .set(
                "deleted",
                false,
                OnConflict::Expr("t.deleted OR EXCLUDED.deleted"),
            )
            .object(&object, OnConflict::Replace)
            .sql();
        let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(sql.starts_with(
            "INSERT INTO customers AS t (id, livemode, stripe_version, object_time, last_event_id, email, deleted, object) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ), "{sql}");
        assert!(sql.contains(
            "DO UPDATE SET stripe_version = EXCLUDED.stripe_version, object_time = EXCLUDED.object_time, last_event_id = EXCLUDED.last_event_id, email = coalesce(EXCLUDED.email, t.email), deleted = t.deleted OR EXCLUDED.deleted, object = EXCLUDED.object, updated_at = now() WHERE (EXCLUDED.stripe_version, EXCLUDED.object_time) >= (t.stripe_version, t.object_time) RETURNING id"
        ), "{sql}");
    }
}
