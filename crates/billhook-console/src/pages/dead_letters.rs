//! `/dead-letters`: every kind, filtered; requeue one, or every one a filter selects after a
//! page that says how many it will touch. A reason is required; the worker's own requeue does
//! the work and the audit log names who asked.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, PageError, check_form, filters, href, page};
use crate::State;
use crate::actions::{RequeueRequest, Requeued};
use crate::api::ApiError;
use crate::query::dead_letters::{self, DeadLetterRow, Filter, KINDS};
use crate::session::Session;

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    chrome: Chrome,
    filter: Filter,
    kinds: &'static [&'static str],
    letters: Vec<DeadLetterRow>,
    next: Option<String>,
    notice: Option<String>,
}

async fn render(
    session: &Session,
    state: &State,
    filter: Filter,
    notice: Option<String>,
) -> Result<HttpResponse, PageError> {
    let found = dead_letters::list(&state.pool, &filter).await?;
    let next = found.next_cursor.map(|cursor| {
        href(
            "/dead-letters",
            &Filter {
                cursor: Some(cursor),
                ..filter.clone()
            },
        )
    });
    page(&DeadLettersPage {
        chrome: Chrome::new(session, "dead-letters"),
        filter: Filter {
            cursor: None,
            ..filter
        },
        kinds: KINDS,
        letters: found.items,
        next,
        notice,
    })
}

pub async fn list(
    session: Session,
    state: web::Data<State>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, PageError> {
    render(&session, &state, filter.into_inner(), None).await
}

#[derive(Deserialize)]
pub struct RequeueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// Job ids, comma-separated: one from a row's form, or those a confirmation page showed;
    /// absent: every one `kind` selects (counted first).
    job_ids: Option<String>,
    kind: Option<String>,
    /// Set by the confirmation page: the count has been seen.
    #[serde(default)]
    confirmed: bool,
}

#[derive(Template)]
#[template(path = "requeue_confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    kind: Option<String>,
    reason: String,
    would: Requeued,
}

impl ConfirmPage {
    /// The ids the confirmation requeues: exactly those counted, not whatever died since.
    fn job_ids(&self) -> String {
        self.would.job_ids.join(",")
    }
}

pub async fn requeue(
    req: HttpRequest,
    session: Session,
    state: web::Data<State>,
    form: web::Form<RequeueForm>,
) -> Result<HttpResponse, PageError> {
    check_form(&req, &session, &form.csrf)?;
    let form = form.into_inner();
    let kind = form.kind.filter(|k| !k.trim().is_empty());
    if form.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "a requeue needs a reason: go back and say why".to_owned(),
        )
        .into());
    }
    let mut request = RequeueRequest {
        job_ids: form
            .job_ids
            .iter()
            .flat_map(|ids| ids.split(','))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect(),
        kind: kind.clone(),
        reason: form.reason.clone(),
        dry_run: true,
        ..RequeueRequest::default()
    };
    if request.job_ids.is_empty() && !form.confirmed {
        let would = act(&state, &request, &session.label).await?;
        return page(&ConfirmPage {
            chrome: Chrome::new(&session, "dead-letters"),
            kind,
            reason: form.reason,
            would,
        });
    }
    request.dry_run = false;
    let done = act(&state, &request, &session.label).await?;
    tracing::info!(by = %session.label, count = done.count, reason = %request.reason,
        "console: dead letters requeued");
    let notice = Some(format!(
        "Requeued {} dead letter{}: the worker runs {} again.",
        done.count,
        if done.count == 1 { "" } else { "s" },
        if done.count == 1 { "it" } else { "them" }
    ));
    render(
        &session,
        &state,
        Filter {
            kind,
            ..Filter::default()
        },
        notice,
    )
    .await
}

async fn act(state: &State, request: &RequeueRequest, by: &str) -> Result<Requeued, PageError> {
    Ok(state
        .actions
        .requeue(request, by)
        .await
        .map_err(|e| ApiError::Internal(format!("requeue failed; nothing was changed: {e:#}")))?)
}
