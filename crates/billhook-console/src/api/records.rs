//! The read-only lists and pages of the API: customers (with the host application's
//! entitlements and balance), orders, dunning runs, emails, notices, and the overview. Each is
//! its `query` module's answer as JSON; the pages render the same.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use crate::State;
use crate::query::{self, Page, customers, dunning, emails, notices, orders};
use crate::tokens::Caller;

fn listed(key: &str, page: Page<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ key: page.items, "next_cursor": page.next_cursor }))
}

pub async fn overview(_: Caller, state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(query::overview::overview(&state.pool).await?))
}

pub async fn customer_list(
    _: Caller,
    state: web::Data<State>,
    filter: web::Query<customers::Filter>,
) -> Result<HttpResponse, ApiError> {
    Ok(listed(
        "customers",
        customers::list(&state.pool, &filter).await?,
    ))
}

pub async fn customer(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(customers::show(&state.pool, &id).await?))
}

/// What the customer is entitled to now: for the host application, without SQL.
pub async fn entitlements(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    customers::known(&state.pool, &id).await?;
    let entitlements = customers::entitlements(&state.pool, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "customer_id": *id, "entitlements": entitlements })))
}

/// The customer's ledger balance per unit.
pub async fn balance(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    customers::known(&state.pool, &id).await?;
    let balances = customers::balance(&state.pool, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "customer_id": *id, "balances": balances })))
}

pub async fn order_list(
    _: Caller,
    state: web::Data<State>,
    filter: web::Query<orders::Filter>,
) -> Result<HttpResponse, ApiError> {
    Ok(listed("orders", orders::list(&state.pool, &filter).await?))
}

/// One order by its id or the application's reference.
pub async fn order(
    _: Caller,
    state: web::Data<State>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(orders::show(&state.pool, &key).await?))
}

pub async fn dunning_list(
    _: Caller,
    state: web::Data<State>,
    filter: web::Query<dunning::Filter>,
) -> Result<HttpResponse, ApiError> {
    Ok(listed(
        "dunning_runs",
        dunning::list(&state.pool, &filter).await?,
    ))
}

pub async fn dunning_run(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(dunning::show(&state.pool, &id).await?))
}

pub async fn email_list(
    _: Caller,
    state: web::Data<State>,
    filter: web::Query<emails::Filter>,
) -> Result<HttpResponse, ApiError> {
    Ok(listed("emails", emails::list(&state.pool, &filter).await?))
}

pub async fn email(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(emails::show(&state.pool, &id).await?))
}

pub async fn notice_list(
    _: Caller,
    state: web::Data<State>,
    filter: web::Query<notices::Filter>,
) -> Result<HttpResponse, ApiError> {
    Ok(listed(
        "notices",
        notices::list(&state.pool, &filter).await?,
    ))
}

pub async fn notice(
    _: Caller,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(notices::show(&state.pool, &id).await?))
}
