//! `/events` (the list with its filters, newest first, keyset pages) and `/events/{id}` (an
//! event with its payload and everything applying it did; a replay form when it failed).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, PageError, check_form, filters, href, page};
use crate::State;
use crate::api::events::replay_event;
use crate::query::events::{self, EventDetail, EventRow, Filter, STATUSES};
use crate::session::Session;

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    filter: Filter,
    statuses: &'static [&'static str],
    events: Vec<EventRow>,
    next: Option<String>,
}

pub async fn list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, PageError> {
    let filter = filter.into_inner();
    let found = events::list(&state.pool, &filter).await?;
    let next = found.next_cursor.map(|cursor| {
        href(
            "/events",
            &Filter {
                cursor: Some(cursor),
                ..filter.clone()
            },
        )
    });
    page(&EventsPage {
        chrome: Chrome::new(&session, "events"),
        filter: Filter {
            cursor: None,
            ..filter
        },
        statuses: STATUSES,
        events: found.items,
        next,
    })
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    chrome: Chrome,
    event: EventDetail,
    notice: Option<String>,
}

pub async fn show(
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let event = events::show(&state.pool, &id).await?;
    page(&EventPage {
        chrome: Chrome::new(&session, "events"),
        event,
        notice: None,
    })
}

#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn replay(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    id: web::Path<String>,
    form: web::Form<ReplayForm>,
) -> Result<HttpResponse, PageError> {
    check_form(&req, &session, &form.csrf)?;
    let done = replay_event(&state, &id, &form.reason, &session.label).await?;
    let event = events::show(&state.pool, &id).await?;
    page(&EventPage {
        chrome: Chrome::new(&session, "events"),
        event,
        notice: Some(format!(
            "Replayed: {} job{} requeued; the worker applies it next.",
            done.count,
            if done.count == 1 { "" } else { "s" }
        )),
    })
}
