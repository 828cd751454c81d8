//! The pages of the record areas: customers, orders, dunning runs, emails and notices. Each
//! is a list with its filters (keyset pages) and a page for one record, rendered by two
//! generic templates from the very JSON the API answers with. An order's page has the
//! fulfilment form, an open alert incident's the acknowledgement.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::view::{Section, Table, sections};
use super::{Chrome, PageError, check_form, filters, page};
use crate::State;
use crate::actions::MarkOrder;
use crate::api::alerts::acknowledge_alert;
use crate::api::fulfilment::mark_order;
use crate::query::{Page, alerts, customers, dunning, emails, notices, orders};
use crate::session::Session;

/// A filter field of a list.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// The values a select offers; empty: a text field.
    pub choices: &'static [&'static str],
}

const fn text(name: &'static str, label: &'static str) -> Field {
    Field {
        name,
        label,
        choices: &[],
    }
}

/// What a list page shows.
pub struct Area {
    pub title: &'static str,
    pub section: &'static str,
    pub path: &'static str,
    pub fields: &'static [Field],
    pub columns: &'static [&'static str],
}

const CUSTOMERS: Area = Area {
    title: "Customers",
    section: "customers",
    path: "/customers",
    fields: &[text("id", "Customer id"), text("email", "Email")],
    columns: &["id", "email", "name", "deleted", "livemode", "updated_at"],
};

const ORDERS: Area = Area {
    title: "Orders",
    section: "orders",
    path: "/orders",
    fields: &[
        text("reference", "Reference"),
        Field {
            name: "status",
            label: "Status",
            choices: orders::STATUSES,
        },
        text("customer", "Customer"),
    ],
    columns: &[
        "id",
        "reference",
        "status",
        "amount",
        "currency",
        "customer_id",
        "paid_at",
        "created_at",
    ],
};

const DUNNING: Area = Area {
    title: "Dunning runs",
    section: "dunning",
    path: "/dunning-runs",
    fields: &[
        Field {
            name: "state",
            label: "State",
            choices: dunning::STATES,
        },
        text("customer", "Customer"),
        text("subscription", "Subscription"),
    ],
    columns: &[
        "id",
        "state",
        "steps_done",
        "invoice_id",
        "customer_id",
        "started_at",
        "next_step_at",
        "stop_reason",
    ],
};

const EMAILS: Area = Area {
    title: "Emails",
    section: "emails",
    path: "/emails",
    fields: &[
        Field {
            name: "status",
            label: "Status",
            choices: emails::STATUSES,
        },
        text("template", "Template"),
        text("recipient", "Recipient"),
        text("event", "Event"),
    ],
    columns: &[
        "id",
        "template",
        "recipient",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    ],
};

const NOTICES: Area = Area {
    title: "Notices",
    section: "notices",
    path: "/notices",
    fields: &[
        Field {
            name: "status",
            label: "Status",
            choices: notices::STATUSES,
        },
        text("type", "Type"),
        text("event", "Event"),
    ],
    columns: &[
        "id",
        "type",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "event_id",
        "created_at",
    ],
};

const ALERTS: Area = Area {
    title: "Alerts",
    section: "alerts",
    path: "/alerts",
    fields: &[
        Field {
            name: "state",
            label: "State",
            choices: alerts::STATES,
        },
        text("rule", "Rule"),
    ],
    columns: &[
        "id",
        "rule",
        "state",
        "figure",
        "opened_at",
        "resolved_at",
        "acknowledged_by",
    ],
};

#[derive(Template)]
#[template(path = "records.html")]
struct ListPage {
    chrome: Chrome,
    area: &'static Area,
    values: BTreeMap<String, String>,
    table: Table,
    next: Option<String>,
}

impl ListPage {
    fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }
}

fn list_page(
    session: &Session,
    area: &'static Area,
    mut values: BTreeMap<String, String>,
    found: Page<Value>,
) -> Result<HttpResponse, PageError> {
    values.retain(|k, v| !v.trim().is_empty() && k != "cursor");
    let next = found.next_cursor.map(|cursor| {
        let mut query = values.clone();
        query.insert("cursor".to_owned(), cursor);
        super::href(area.path, &query)
    });
    page(&ListPage {
        chrome: Chrome::new(session, area.section),
        area,
        table: Table::of(area.columns, &found.items),
        values,
        next,
    })
}

type Values = web::Query<BTreeMap<String, String>>;

pub async fn customer_list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<customers::Filter>,
    values: Values,
) -> Result<HttpResponse, PageError> {
    let found = customers::list(&state.pool, &filter).await?;
    list_page(&session, &CUSTOMERS, values.into_inner(), found)
}

pub async fn order_list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<orders::Filter>,
    values: Values,
) -> Result<HttpResponse, PageError> {
    let found = orders::list(&state.pool, &filter).await?;
    list_page(&session, &ORDERS, values.into_inner(), found)
}

pub async fn dunning_list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<dunning::Filter>,
    values: Values,
) -> Result<HttpResponse, PageError> {
    let found = dunning::list(&state.pool, &filter).await?;
    list_page(&session, &DUNNING, values.into_inner(), found)
}

pub async fn email_list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<emails::Filter>,
    values: Values,
) -> Result<HttpResponse, PageError> {
    let found = emails::list(&state.pool, &filter).await?;
    list_page(&session, &EMAILS, values.into_inner(), found)
}

pub async fn alert_list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<alerts::Filter>,
    values: Values,
) -> Result<HttpResponse, PageError> {
    let found = alerts::list(&state.pool, &filter).await?;
    list_page(&session, &ALERTS, values.into_inner(), found)
}

pub async fn notice_list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<notices::Filter>,
    values: Values,
) -> Result<HttpResponse, PageError> {
    let found = notices::list(&state.pool, &filter).await?;
    list_page(&session, &NOTICES, values.into_inner(), found)
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    chrome: Chrome,
    /// The list it belongs to: (path, title).
    list: (&'static str, &'static str),
    heading: String,
    sections: Vec<(String, Section)>,
    /// For an order an operator may mark: its id.
    fulfilment: Option<String>,
    /// For an open incident not yet acknowledged that an operator may acknowledge: its id.
    acknowledge: Option<String>,
    notice: Option<String>,
    /// A related list, e.g. a customer's events: (link, text).
    related: Option<(String, &'static str)>,
}

fn record_page(
    session: &Session,
    area: &'static Area,
    heading: String,
    record: &Value,
    order: &[&str],
) -> RecordPage {
    RecordPage {
        chrome: Chrome::new(session, area.section),
        list: (area.path, area.title),
        heading,
        sections: sections(record, order),
        fulfilment: None,
        acknowledge: None,
        notice: None,
        related: None,
    }
}

pub async fn customer(
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = customers::show(&state.pool, &id).await?;
    let mut view = record_page(
        &session,
        &CUSTOMERS,
        id.to_string(),
        &record,
        &[
            "customer",
            "entitlements",
            "balance",
            "subscriptions",
            "invoices",
            "payments",
            "payment_methods",
            "orders",
            "ledger_entries",
            "emails",
            "notices",
        ],
    );
    view.related = Some((
        super::href("/events", &[("customer", id.as_str())]),
        "Its events",
    ));
    page(&view)
}

async fn order_view(
    session: &Session,
    state: &State,
    key: &str,
    notice: Option<String>,
) -> Result<HttpResponse, PageError> {
    let record = orders::show(&state.pool, key).await?;
    let heading = record["order"]["reference"]
        .as_str()
        .or(record["order"]["id"].as_str())
        .unwrap_or(key)
        .to_owned();
    let mut view = record_page(
        session,
        &ORDERS,
        heading,
        &record,
        &["order", "ledger_entries", "emails", "notices", "audit"],
    );
    let status = record["order"]["status"].as_str().unwrap_or_default();
    if session.may_operate() && matches!(status, "paid" | "fulfilled" | "fulfillment_failed") {
        view.fulfilment = record["order"]["id"].as_str().map(str::to_owned);
    }
    view.notice = notice;
    page(&view)
}

pub async fn order(
    session: Session,
    state: web::Data<State>,
    key: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    order_view(&session, &state, &key, None).await
}

#[derive(Deserialize)]
pub struct FulfilmentForm {
    #[serde(default)]
    csrf: String,
    status: String,
    #[serde(default)]
    reason: String,
}

pub async fn mark(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    key: web::Path<String>,
    form: web::Form<FulfilmentForm>,
) -> Result<HttpResponse, PageError> {
    check_form(&req, &session, &form.csrf)?;
    let form = form.into_inner();
    let request = MarkOrder {
        status: form.status,
        reason: Some(form.reason).filter(|r| !r.trim().is_empty()),
    };
    let done = mark_order(&state, &key, &request, &session.label).await?;
    let notice = if done.changed {
        format!("Marked {} (was {}).", done.status, done.from)
    } else {
        format!("Already {}: nothing changed.", done.status)
    };
    order_view(&session, &state, &key, Some(notice)).await
}

async fn alert_view(
    session: &Session,
    state: &State,
    id: &str,
    notice: Option<String>,
) -> Result<HttpResponse, PageError> {
    let record = alerts::show(&state.pool, id).await?;
    let mut view = record_page(
        session,
        &ALERTS,
        id.to_owned(),
        &record,
        &["incident", "history", "messages"],
    );
    let incident = &record["incident"];
    if session.may_operate() && incident["state"] == "open" && incident["acknowledged_at"].is_null()
    {
        view.acknowledge = Some(id.to_owned());
    }
    view.notice = notice;
    page(&view)
}

pub async fn alert(
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    alert_view(&session, &state, &id, None).await
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn acknowledge(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    check_form(&req, &session, &form.csrf)?;
    let changed = acknowledge_alert(&state, &id, &session.label).await?;
    let notice = if changed {
        format!("Acknowledged by {}: no more reminders.", session.label)
    } else {
        "Already acknowledged.".to_owned()
    };
    alert_view(&session, &state, &id, Some(notice)).await
}

pub async fn dunning_run(
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = dunning::show(&state.pool, &id).await?;
    page(&record_page(
        &session,
        &DUNNING,
        id.to_string(),
        &record,
        &["run", "steps", "emails", "audit"],
    ))
}

pub async fn email(
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = emails::show(&state.pool, &id).await?;
    page(&record_page(
        &session,
        &EMAILS,
        id.to_string(),
        &record,
        &["email", "dead_letter"],
    ))
}

pub async fn notice(
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = notices::show(&state.pool, &id).await?;
    page(&record_page(
        &session,
        &NOTICES,
        id.to_string(),
        &record,
        &["notice", "dead_letter"],
    ))
}
