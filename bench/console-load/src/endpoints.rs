//! The endpoints measured, with real ids read from the seeded database: 50 of each kind of
//! record for the show pages, spread over the whole history.

use anyhow::Context as _;
use sqlx::PgPool;

use crate::{Client, Endpoint};

/// Up to 50 values of `sql`'s one text column.
async fn sample(pool: &PgPool, sql: &'static str) -> anyhow::Result<Vec<String>> {
    let values: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await?;
    anyhow::ensure!(
        !values.is_empty(),
        "the seeded database has nothing for: {sql}"
    );
    Ok(values)
}

fn each(prefix: &str, ids: &[String], suffix: &str) -> Vec<String> {
    ids.iter()
        .map(|id| format!("{prefix}{id}{suffix}"))
        .collect()
}

fn one(name: &str, page: bool, path: &str) -> Endpoint {
    Endpoint {
        name: name.to_owned(),
        page,
        paths: vec![path.to_owned()],
    }
}

fn many(name: &str, page: bool, paths: Vec<String>) -> Endpoint {
    Endpoint {
        name: name.to_owned(),
        page,
        paths,
    }
}

pub async fn all(pool: &PgPool, client: &Client) -> anyhow::Result<Vec<Endpoint>> {
    let events = sample(
        pool,
        "SELECT id FROM webhook_events TABLESAMPLE SYSTEM (1) LIMIT 50",
    )
    .await?;
    let customers = sample(
        pool,
        "SELECT id FROM customers TABLESAMPLE SYSTEM (5) LIMIT 50",
    )
    .await?;
    let emails_of = sample(
        pool,
        "SELECT email FROM customers TABLESAMPLE SYSTEM (5) WHERE email IS NOT NULL LIMIT 50",
    )
    .await?;
    let objects = sample(pool, "SELECT object_id FROM webhook_events TABLESAMPLE SYSTEM (1) WHERE object_id IS NOT NULL LIMIT 50").await?;
    let orders = sample(
        pool,
        "SELECT reference FROM orders TABLESAMPLE SYSTEM (10) WHERE reference IS NOT NULL LIMIT 50",
    )
    .await?;
    let runs = sample(pool, "SELECT id FROM dunning_runs LIMIT 50").await?;
    let emails = sample(
        pool,
        "SELECT id FROM emails TABLESAMPLE SYSTEM (5) LIMIT 50",
    )
    .await?;
    let notices = sample(
        pool,
        "SELECT id FROM app_notifications TABLESAMPLE SYSTEM (5) LIMIT 50",
    )
    .await?;
    // A second page of events, by the cursor the first page gives.
    let first = client
        .http
        .get(format!("{}/api/v1/events", client.base))
        .bearer_auth(&client.token)
        .send()
        .await?
        .json::<serde_json::Value>()
        .await?;
    let cursor = first["next_cursor"]
        .as_str()
        .context("the first page of events has no next_cursor")?
        .to_owned();
    // A day a month ago, for the time-range filter.
    let day: String = sqlx::query_scalar(
        "SELECT to_char(date_trunc('day', now() - interval '30 days'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .fetch_one(pool)
    .await?;
    let next_day: String = sqlx::query_scalar(
        "SELECT to_char(date_trunc('day', now() - interval '29 days'), 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .fetch_one(pool)
    .await?;
    let api = "/api/v1";
    Ok(vec![
        one("api overview", false, &format!("{api}/overview")),
        one("api events", false, &format!("{api}/events")),
        one(
            "api events, page 2",
            false,
            &format!("{api}/events?cursor={cursor}"),
        ),
        one(
            "api events ?type",
            false,
            &format!("{api}/events?type=invoice.paid"),
        ),
        one(
            "api events ?status=dead",
            false,
            &format!("{api}/events?status=dead"),
        ),
        one(
            "api events ?status=failed&type",
            false,
            &format!("{api}/events?status=failed&type=charge.succeeded"),
        ),
        many(
            "api events ?customer",
            false,
            each(&format!("{api}/events?customer="), &customers, ""),
        ),
        many(
            "api events ?object",
            false,
            each(&format!("{api}/events?object="), &objects, ""),
        ),
        one(
            "api events ?since&until (a day)",
            false,
            &format!("{api}/events?since={day}&until={next_day}"),
        ),
        many(
            "api events ?id",
            false,
            each(&format!("{api}/events?id="), &events, ""),
        ),
        many(
            "api event",
            false,
            each(&format!("{api}/events/"), &events, ""),
        ),
        one("api dead-letters", false, &format!("{api}/dead-letters")),
        one(
            "api dead-letters ?kind=send_email",
            false,
            &format!("{api}/dead-letters?kind=send_email"),
        ),
        one("api customers", false, &format!("{api}/customers")),
        many(
            "api customers ?email",
            false,
            each(&format!("{api}/customers?email="), &emails_of, ""),
        ),
        many(
            "api customer",
            false,
            each(&format!("{api}/customers/"), &customers, ""),
        ),
        many(
            "api customer entitlements",
            false,
            each(&format!("{api}/customers/"), &customers, "/entitlements"),
        ),
        many(
            "api customer balance",
            false,
            each(&format!("{api}/customers/"), &customers, "/balance"),
        ),
        one("api orders", false, &format!("{api}/orders")),
        one(
            "api orders ?status=refunded",
            false,
            &format!("{api}/orders?status=refunded"),
        ),
        many(
            "api orders ?customer",
            false,
            each(&format!("{api}/orders?customer="), &customers, ""),
        ),
        many(
            "api order (by reference)",
            false,
            each(&format!("{api}/orders/"), &orders, ""),
        ),
        one("api dunning-runs", false, &format!("{api}/dunning-runs")),
        one(
            "api dunning-runs ?state=active",
            false,
            &format!("{api}/dunning-runs?state=active"),
        ),
        many(
            "api dunning-run",
            false,
            each(&format!("{api}/dunning-runs/"), &runs, ""),
        ),
        one("api emails", false, &format!("{api}/emails")),
        one(
            "api emails ?status=dead",
            false,
            &format!("{api}/emails?status=dead"),
        ),
        many(
            "api emails ?recipient",
            false,
            each(&format!("{api}/emails?recipient="), &emails_of, ""),
        ),
        many(
            "api email",
            false,
            each(&format!("{api}/emails/"), &emails, ""),
        ),
        one("api notices", false, &format!("{api}/notices")),
        one(
            "api notices ?status=pending",
            false,
            &format!("{api}/notices?status=pending"),
        ),
        many(
            "api notice",
            false,
            each(&format!("{api}/notices/"), &notices, ""),
        ),
        one("page /", true, "/"),
        one("page /events", true, "/events"),
        one("page /events ?status=dead", true, "/events?status=dead"),
        many(
            "page /events ?customer",
            true,
            each("/events?customer=", &customers, ""),
        ),
        many("page /events/{id}", true, each("/events/", &events, "")),
        one("page /dead-letters", true, "/dead-letters"),
        one("page /customers", true, "/customers"),
        many(
            "page /customers/{id}",
            true,
            each("/customers/", &customers, ""),
        ),
        one("page /orders", true, "/orders"),
        many("page /orders/{ref}", true, each("/orders/", &orders, "")),
        one("page /dunning-runs", true, "/dunning-runs"),
        many(
            "page /dunning-runs/{id}",
            true,
            each("/dunning-runs/", &runs, ""),
        ),
        one("page /emails", true, "/emails"),
        many("page /emails/{id}", true, each("/emails/", &emails, "")),
        one("page /notices", true, "/notices"),
        many("page /notices/{id}", true, each("/notices/", &notices, "")),
    ])
}
