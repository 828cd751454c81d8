//! `/login` and `/logout`: a token is typed once, checked like an API token, and exchanged for
//! a session cookie. Login attempts are rate-limited per client address and in all; a console
//! without tokens (loopback only) logs the browser in as `local` without asking.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{PageError, html};
use crate::State;
use crate::session::{self, LOCAL, Session};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after logging in: a path of this console, never another site.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\"))
        .unwrap_or("/")
}

fn logged_in(req: &HttpRequest, value: String, next: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(session::cookie(req, value))
        .insert_header((header::LOCATION, next.to_owned()))
        .finish()
}

pub async fn form(
    req: HttpRequest,
    state: web::Data<State>,
    query: web::Query<Next>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(query.next.as_deref());
    if state.tokens.as_ref().is_none_or(|t| t.is_empty())
        && let Some((value, _)) = session::issue(&state, LOCAL)
    {
        return Ok(logged_in(&req, value, next));
    }
    let page = LoginPage { next, error: None };
    Ok(html(StatusCode::OK, page.render()?))
}

#[derive(Deserialize)]
pub struct Credentials {
    token: String,
    next: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &"[redacted]")
            .field("next", &self.next)
            .finish()
    }
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<Credentials>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(form.next.as_deref());
    let client = req.peer_addr().map(|a| a.ip());
    if let Err(wait) = state.logins.check(client) {
        tracing::warn!(client = ?client, "console: too many login attempts; refused");
        let page = LoginPage {
            next,
            error: Some("Too many login attempts. Wait a minute and try again."),
        };
        let mut response = html(StatusCode::TOO_MANY_REQUESTS, page.render()?);
        if let Ok(value) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    let caller = state
        .tokens
        .as_ref()
        .and_then(|tokens| tokens.verify(form.token.trim()));
    let Some(caller) = caller else {
        tracing::warn!(client = ?client, "console: a login with an unknown token was refused");
        let page = LoginPage {
            next,
            error: Some("That token is not one of this console's tokens."),
        };
        return Ok(html(StatusCode::UNAUTHORIZED, page.render()?));
    };
    let (value, _) = session::issue(&state, &caller.label).ok_or(PageError::LogIn {
        next: next.to_owned(),
    })?;
    tracing::info!(by = %caller.label, "console: logged in");
    Ok(logged_in(&req, value, next))
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    req: HttpRequest,
    session: Session,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, PageError> {
    // Logging out needs no operate role, but the form must be this console's.
    if !session::same_origin(&req) || !session.csrf_matches(&form.csrf) {
        return Err(PageError::Csrf);
    }
    tracing::info!(by = %session.label, "console: logged out");
    Ok(HttpResponse::SeeOther()
        .cookie(session::removal(&req))
        .insert_header((header::LOCATION, "/login"))
        .finish())
}
