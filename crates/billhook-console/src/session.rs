//! Page sessions: after logging in with a token once, the browser holds a signed cookie
//! (HttpOnly, SameSite=Strict, Secure over TLS or behind a proxy that says so) naming the
//! token's label, an expiry and a random nonce. It is signed with the token itself
//! ([`Tokens::sign`]), so any console process with the same tokens accepts it, and changing or
//! removing a token ends its sessions; the role is always the token's current one. Nothing in
//! the cookie is secret: the token never leaves the login request.
//!
//! Every form that acts carries a CSRF token derived from the session (an HMAC of its nonce),
//! checked on POST besides SameSite and the Origin header.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::State;
use crate::tokens::Role;

/// The session cookie's name.
pub const COOKIE: &str = "billhook_console";

/// How long a page session lasts.
pub const LIFETIME_SECS: i64 = 12 * 3600;

/// The label of every caller of a console without tokens (loopback only).
pub const LOCAL: &str = "local";

/// What the cookie says, signed.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The token's label.
    l: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// Random, per login: what the CSRF token is derived from.
    n: String,
}

/// A logged-in page user.
#[derive(Debug, Clone)]
pub struct Session {
    pub label: String,
    pub role: Role,
    csrf: String,
}

impl Session {
    pub fn may_operate(&self) -> bool {
        self.role == Role::Operate
    }

    /// The CSRF token every acting form carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a form's CSRF token is this session's.
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// An HMAC of `message` with the key of `label`'s token (or, without tokens, the process's own
/// key for the `local` caller), and the role that goes with it.
fn sign(state: &State, label: &str, message: &[u8]) -> Option<([u8; 32], Role)> {
    match state.tokens.as_ref().filter(|t| !t.is_empty()) {
        Some(tokens) => tokens.sign(label, message),
        None if label == LOCAL => {
            use hmac::Mac as _;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&state.local_key).ok()?;
            mac.update(message);
            Some((mac.finalize().into_bytes().into(), Role::Operate))
        }
        None => None,
    }
}

fn session(state: &State, claims: &Claims) -> Option<Session> {
    let (csrf, role) = sign(state, &claims.l, format!("csrf:{}", claims.n).as_bytes())?;
    Some(Session {
        label: claims.l.clone(),
        role,
        csrf: URL_SAFE_NO_PAD.encode(csrf),
    })
}

/// A new session for `label`: the cookie's value and the session.
pub fn issue(state: &State, label: &str) -> Option<(String, Session)> {
    let claims = Claims {
        l: label.to_owned(),
        e: Utc::now().timestamp() + LIFETIME_SECS,
        n: hex::encode(rand::random::<[u8; 16]>()),
    };
    let payload = serde_json::to_vec(&claims).ok()?;
    let (mac, _) = sign(state, label, &payload)?;
    let value = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(mac)
    );
    Some((value, session(state, &claims)?))
}

/// The session a cookie value proves, if it is valid and not expired.
pub fn verify(state: &State, value: &str) -> Option<Session> {
    let (payload, mac) = value.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    let claims: Claims = serde_json::from_slice(&payload).ok()?;
    let (expected, _) = sign(state, &claims.l, &payload)?;
    if !bool::from(expected.as_slice().ct_eq(&mac)) || claims.e < Utc::now().timestamp() {
        return None;
    }
    session(state, &claims)
}

/// The session of a request, from its cookie.
pub fn of_request(state: &State, req: &HttpRequest) -> Option<Session> {
    verify(state, req.cookie(COOKIE)?.value())
}

/// Whether the request came over TLS, as the connection or a proxy's `Forwarded` /
/// `X-Forwarded-Proto` header says: then the cookie is `Secure`.
fn over_tls(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The cookie holding a new session.
pub fn cookie(req: &HttpRequest, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_tls(req))
        .max_age(actix_web::cookie::time::Duration::seconds(LIFETIME_SECS))
        .finish()
}

/// The cookie that ends a session in the browser.
pub fn removal(req: &HttpRequest) -> Cookie<'static> {
    let mut cookie = cookie(req, String::new());
    cookie.make_removal();
    cookie
}

/// Whether a POST's `Origin` (when the browser sends one) is this console itself: a form
/// posted from another site is refused even before its CSRF token is looked at.
pub fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req
        .headers()
        .get(actix_web::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    let info = req.connection_info();
    origin
        .split_once("://")
        .is_some_and(|(_, host)| host.eq_ignore_ascii_case(info.host()))
}
