//! Delivery order never matters: each mirror row keeps the version it was last written from,
//! and an older event never overwrites it.
//!
//! A version is (the event's `created`, the latest of the object's own time fields). Lower than
//! the stored one: stale, recorded and not applied. Higher: written. Equal (two events of the
//! same second that the object's fields cannot tell apart): applied, not dropped; and when a
//! Stripe API key is configured, the tie is settled by fetching the object as it is now.

use std::borrow::Cow;

use serde_json::Value;
use sqlx::PgConnection;

use super::context::Context;
use super::event::Event;
use crate::queue::JobError;
use crate::stripe::fields;

/// The mirror tables, with where Stripe's API serves their objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Customers,
    PaymentMethods,
    Subscriptions,
    Invoices,
    PaymentIntents,
    Charges,
    CheckoutSessions,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::PaymentMethods => "payment_methods",
            Self::Subscriptions => "subscriptions",
            Self::Invoices => "invoices",
            Self::PaymentIntents | Self::Charges => "payments",
            Self::CheckoutSessions => "checkout_sessions",
        }
    }

    /// The API path that retrieves one object.
    pub fn api_path(self, id: &str) -> String {
        let collection = match self {
            Self::Customers => "customers",
            Self::PaymentMethods => "payment_methods",
            Self::Subscriptions => "subscriptions",
            Self::Invoices => "invoices",
            Self::PaymentIntents => "payment_intents",
            Self::Charges => "charges",
            Self::CheckoutSessions => "checkout/sessions",
        };
        format!("/v1/{collection}/{id}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// The event's `created`, Unix seconds.
    pub event_time: i64,
    /// The latest of the object's own time fields, Unix seconds (0 when it has none).
    pub object_time: i64,
}

impl Version {
    /// `paths` name the object's time fields that move forward as it changes.
    pub fn of(event: &Event, object: &Value, paths: &[&str]) -> Self {
        Self::at(event.created, object, paths)
    }

    /// The version of `object` as known at `event_time` (an event's `created`, or when a sync
    /// fetched it), with `paths` as in [`Version::of`].
    pub fn at(event_time: i64, object: &Value, paths: &[&str]) -> Self {
        let object_time = paths
            .iter()
            .filter_map(|p| fields::i64_at(object, p))
            .max()
            .unwrap_or(0);
        Self {
            event_time,
            object_time,
        }
    }
}

/// What to write, when the event is not stale.
pub struct Write<'a> {
    pub object: Cow<'a, Value>,
    pub version: Version,
    /// The object was fetched from Stripe's API to settle a tie.
    pub fetched: bool,
}

/// Compares `version` with the stored row `id` of `table` (the caller holds the object's
/// advisory lock) when Stripe's API can settle a tie; `None`: the event is stale. Every
/// handler's upsert repeats the comparison as its guard and reports a stale event itself, so
/// without an API key this asks the database nothing.
pub async fn check<'a>(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &Event,
    table: Table,
    id: &str,
    object: &'a Value,
    version: Version,
) -> Result<Option<Write<'a>>, JobError> {
    let write = |object| Write {
        object,
        version,
        fetched: false,
    };
    // Without Stripe's API there is nothing to do about a tie: the guard in each handler's
    // upsert (`WHERE (new version) >= (stored version)`) decides alone, with no extra query.
    if ctx.stripe.is_none() {
        return Ok(Some(write(Cow::Borrowed(object))));
    }
    let stored: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT extract(epoch FROM stripe_version)::bigint, object_time FROM {} WHERE id = $1",
        table.name()
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((event_time, object_time)) = stored else {
        return Ok(Some(write(Cow::Borrowed(object))));
    };
    let stored = Version {
        event_time,
        object_time,
    };
    if version < stored {
        tracing::info!(
            object_id = id,
            ?stored,
            ?version,
            "stale event: not applied"
        );
        return Ok(None);
    }
    if version > stored {
        return Ok(Some(write(Cow::Borrowed(object))));
    }
    let Some(api) = &ctx.stripe else {
        return Ok(Some(write(Cow::Borrowed(object))));
    };
    match api
        .retrieve(&table.api_path(id), event.api_version.as_deref())
        .await
    {
        Ok(current) => {
            tracing::info!(
                object_id = id,
                "same-second tie settled with the object from Stripe's API"
            );
            Ok(Some(Write {
                object: Cow::Owned(current),
                version,
                fetched: true,
            }))
        }
        // Stripe cannot say (the object is gone, the key may not read it): a tie is applied as
        // delivered, as without a key, rather than sending the event to the dead letters.
        Err(JobError::Permanent(error)) => {
            tracing::warn!(object_id = id, error = %format!("{error:#}"),
                "same-second tie not settled through Stripe's API; applied as delivered");
            Ok(Some(write(Cow::Borrowed(object))))
        }
        Err(retryable) => Err(retryable),
    }
}

/// The usual start of a handler: the object's id, its version from `paths`, and [`check`].
/// `None`: the event is stale.
pub async fn check_event<'a>(
    conn: &mut PgConnection,
    ctx: &Context,
    event: &'a Event,
    table: Table,
    paths: &[&str],
) -> Result<Option<(&'a str, Write<'a>)>, JobError> {
    let object = &event.data.object;
    let id = fields::required_str(object, "id")?;
    let version = Version::of(event, object, paths);
    Ok(check(conn, ctx, event, table, id, object, version)
        .await?
        .map(|write| (id, write)))
}
