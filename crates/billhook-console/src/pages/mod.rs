//! The console's web pages: server-rendered HTML (askama templates in `templates/`, checked at
//! compile time) over the same queries as the JSON API (`crate::query`), with htmx for partial
//! updates. Every page reads without JavaScript; acting is a POST form with a CSRF token.
//! A page asked for without a session sends the browser to `/login`.

pub mod assets;
pub mod dead_letters;
pub mod events;
pub mod filters;
pub mod login;
pub mod overview;
pub mod records;
pub mod throttle;
pub mod view;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use crate::State;
use crate::api::ApiError;
use crate::session::{self, Session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/assets/{name}", web::get().to(assets::serve))
        .route("/events", web::get().to(events::list))
        .route("/events/{id}", web::get().to(events::show))
        .route("/events/{id}/replay", web::post().to(events::replay))
        .route("/dead-letters", web::get().to(dead_letters::list))
        .route(
            "/dead-letters/requeue",
            web::post().to(dead_letters::requeue),
        )
        .route("/", web::get().to(overview::show))
        .route("/customers", web::get().to(records::customer_list))
        .route("/customers/{id}", web::get().to(records::customer))
        .route("/orders", web::get().to(records::order_list))
        .route("/orders/{key}", web::get().to(records::order))
        .route("/orders/{key}/fulfillment", web::post().to(records::mark))
        .route("/dunning-runs", web::get().to(records::dunning_list))
        .route("/dunning-runs/{id}", web::get().to(records::dunning_run))
        .route("/emails", web::get().to(records::email_list))
        .route("/emails/{id}", web::get().to(records::email))
        .route("/notices", web::get().to(records::notice_list))
        .route("/notices/{id}", web::get().to(records::notice))
        .route("/alerts", web::get().to(records::alert_list))
        .route("/alerts/{id}", web::get().to(records::alert))
        .route(
            "/alerts/{id}/acknowledge",
            web::post().to(records::acknowledge),
        );
}

/// What every page's frame shows: who is logged in, what they may do, the CSRF token for its
/// forms, and which section is open.
pub struct Chrome {
    pub label: String,
    pub may_operate: bool,
    pub csrf: String,
    pub section: &'static str,
}

impl Chrome {
    pub fn new(session: &Session, section: &'static str) -> Self {
        Self {
            label: session.label.clone(),
            may_operate: session.may_operate(),
            csrf: session.csrf().to_owned(),
            section,
        }
    }
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No valid session: to the login page, then back to `next`.
    #[error("log in first")]
    LogIn { next: String },
    /// A form without this session's CSRF token, or posted from another site.
    #[error(
        "this form has expired or did not come from this console: reload the page and try again"
    )]
    Csrf,
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("the page could not be rendered")]
    Render(#[from] askama::Error),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LogIn { .. } => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Api(e) => e.status_code(),
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::LogIn { next } => {
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, format!("/login?{query}")))
                    .finish();
            }
            Self::Api(ApiError::Database(e)) => {
                tracing::error!(error = %e, "console: database error");
            }
            Self::Render(e) => tracing::error!(error = %e, "console: a page failed to render"),
            _ => {}
        }
        let message = self.to_string();
        let status = self.status_code();
        let page = ErrorPage {
            status: status.as_u16(),
            message: &message,
        };
        html(status, page.render().unwrap_or(message))
    }
}

/// An HTML answer that no cache keeps and no other site frames.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(body)
}

/// A rendered page, 200.
pub fn page(template: &impl Template) -> Result<HttpResponse, PageError> {
    Ok(html(StatusCode::OK, template.render()?))
}

impl FromRequest for Session {
    type Error = PageError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = req
            .app_data::<web::Data<State>>()
            .and_then(|state| session::of_request(state, req));
        std::future::ready(found.ok_or_else(|| {
            PageError::LogIn {
                next: req
                    .uri()
                    .path_and_query()
                    .map_or("/".to_owned(), |p| p.as_str().to_owned()),
            }
        }))
    }
}

/// Checks an acting form: posted from this console, with this session's CSRF token, by a
/// session that may act.
pub fn check_form(req: &HttpRequest, session: &Session, csrf: &str) -> Result<(), PageError> {
    if !session::same_origin(req) || !session.csrf_matches(csrf) {
        tracing::warn!(by = %session.label, path = %req.path(), "console: a form without a valid CSRF token was refused");
        return Err(PageError::Csrf);
    }
    if !session.may_operate() {
        return Err(PageError::Api(ApiError::Forbidden));
    }
    Ok(())
}

/// A link to `path` with `query`'s fields (empty ones left out).
pub fn href(path: &str, query: &impl serde::Serialize) -> String {
    match serde_urlencoded::to_string(query) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}
