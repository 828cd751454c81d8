//! `POST /api/webhooks/stripe`: verify, parse the envelope, store and enqueue, answer. Nothing
//! else happens here: no business logic, no outbound calls, nothing that can be slow.

use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use billhook_core::jobs;
use billhook_core::stripe::{self, Envelope, EnvelopeError, SignatureError, event_types};
use futures_util::StreamExt as _;
use tracing::field;

use crate::AppState;
use crate::metrics::Outcome;
use billhook_core::ingest::{Delivery, IngestError, Origin, Stored};

/// Why a request was not stored. Each maps to one status code and a fixed body; the cause
/// goes to the log, never to the client.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("request body over the size limit")]
    TooLarge,
    #[error("cannot read the request body")]
    BodyRead,
    #[error("the request body did not arrive within the body timeout")]
    BodyTimeout,
    #[error("signature rejected: {0}")]
    Signature(SignatureError),
    #[error("too many rejected requests from this client")]
    RateLimited,
    #[error("verified payload is not a Stripe event")]
    Malformed(#[from] EnvelopeError),
    #[error("storage timed out")]
    Timeout,
    #[error("storage failed")]
    Storage(#[from] IngestError),
}

impl WebhookError {
    fn outcome(&self) -> Outcome {
        match self {
            Self::TooLarge => Outcome::TooLarge,
            Self::BodyTimeout => Outcome::TooSlow,
            Self::BodyRead | Self::Malformed(_) => Outcome::Malformed,
            Self::Signature(_) => Outcome::Unauthorized,
            Self::RateLimited => Outcome::RateLimited,
            Self::Timeout => Outcome::Unavailable,
            Self::Storage(e) if e.is_unavailable() => Outcome::Unavailable,
            Self::Storage(e) if e.is_bad_data() => Outcome::Malformed,
            Self::Storage(_) => Outcome::Error,
        }
    }

    /// Why the delivery was refused, as `rejected_deliveries` counts it; `None` when it was
    /// not refused but could not be stored (the database), which is not the sender's doing.
    fn rejection(&self) -> Option<&'static str> {
        match self {
            Self::Signature(e) => Some(e.reason()),
            Self::RateLimited => Some("rate_limited"),
            Self::TooLarge => Some("too_large"),
            Self::BodyTimeout => Some("too_slow"),
            Self::BodyRead | Self::Malformed(_) => Some("malformed_event"),
            Self::Storage(e) if e.is_bad_data() => Some("malformed_event"),
            Self::Timeout | Self::Storage(_) => None,
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self.outcome() {
            Outcome::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::TooSlow => StatusCode::REQUEST_TIMEOUT,
            Outcome::Malformed => StatusCode::BAD_REQUEST,
            Outcome::Unauthorized => StatusCode::UNAUTHORIZED,
            Outcome::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self.outcome() {
            Outcome::TooLarge => "payload too large",
            Outcome::TooSlow => "request body too slow",
            Outcome::Malformed => "malformed event",
            Outcome::Unauthorized => "invalid signature",
            Outcome::RateLimited => "too many invalid requests",
            Outcome::Unavailable => "temporarily unavailable, retry later",
            _ => "internal error",
        };
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": message }))
    }
}

#[tracing::instrument(
    name = "webhook",
    skip_all,
    fields(event_id = field::Empty, event_type = field::Empty, client = field::Empty)
)]
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebhookError> {
    let started = Instant::now();
    let result = handle(&req, payload, &state).await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok((outcome, _)) => state.metrics.observe(*outcome, seconds),
        Err(e) => {
            let outcome = e.outcome();
            state.metrics.observe(outcome, seconds);
            if let Some(reason) = e.rejection() {
                state.rejections.record(reason);
            }
            match outcome {
                Outcome::Unavailable | Outcome::Error => {
                    tracing::error!(error = %ErrorChain(e), "event not stored");
                }
                _ => tracing::warn!(error = %ErrorChain(e), "request refused"),
            }
        }
    }
    result.map(|(_, response)| response)
}

/// Carries the whole cause chain of an error into the log.
#[derive(Debug)]
struct ErrorChain<'a>(&'a WebhookError);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Outcome, HttpResponse), WebhookError> {
    // A client that trickles its body holds a connection for as long as it likes otherwise.
    let body = tokio::time::timeout(
        state.body_timeout,
        read_body(req, payload, state.max_body_bytes),
    )
    .await
    .map_err(|_| WebhookError::BodyTimeout)??;
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let verified = match stripe::signature::verify(
        signature,
        &body,
        &state.secrets,
        unix_now(),
        state.tolerance_secs,
    ) {
        Ok(v) => v,
        Err(e) => return Err(refuse(req, state, e)),
    };
    let envelope = Envelope::parse(&body)?;
    let span = tracing::Span::current();
    span.record("event_id", envelope.id.as_str());
    span.record("event_type", envelope.event_type.as_str());

    let handled = event_types::is_handled(&envelope.event_type);
    let event_type = envelope.event_type.clone();
    let secret_label = verified.secret_label.clone();
    let delivery = Delivery {
        envelope,
        origin: Origin::Webhook(verified),
        body,
        headers: selected_headers(req.headers()),
        handled,
        trace: jobs::trace_context(),
    };
    let stored = tokio::time::timeout(state.db_timeout, state.ingest.store(delivery))
        .await
        .map_err(|_| WebhookError::Timeout)??;

    let duplicate = stored == Stored::Duplicate;
    let outcome = match (duplicate, handled) {
        (true, _) => Outcome::Duplicate,
        (false, true) => Outcome::Stored,
        (false, false) => Outcome::Ignored,
    };
    if outcome == Outcome::Ignored {
        state.metrics.ignored(&event_type);
    }
    tracing::info!(
        outcome = outcome.as_str(),
        secret = %secret_label,
        "event received"
    );
    let response =
        HttpResponse::Ok().json(serde_json::json!({ "received": true, "duplicate": duplicate }));
    Ok((outcome, response))
}

/// Logs and counts a failed verification; past the client's allowance the answer is 429.
fn refuse(req: &HttpRequest, state: &AppState, error: SignatureError) -> WebhookError {
    state.metrics.signature_failure(error.reason());
    let client = client_ip(req, state.trust_forwarded_for);
    if let Some(ip) = client {
        tracing::Span::current().record("client", field::display(ip));
    }
    tracing::warn!(reason = error.reason(), "signature verification failed");
    match client {
        Some(ip) if !state.reject_limiter.allow_rejection(ip) => WebhookError::RateLimited,
        _ => WebhookError::Signature(error),
    }
}

fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let info = req.connection_info();
        if let Some(ip) = info
            .realip_remote_addr()
            .and_then(|a| a.parse::<IpAddr>().ok())
        {
            return Some(ip);
        }
    }
    req.peer_addr().map(|a| a.ip())
}

/// Reads the body as raw bytes (the signature covers the bytes exactly as sent), refusing
/// anything over `limit` without buffering it.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, WebhookError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::TooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| WebhookError::BodyRead)?;
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request headers kept with the event: enough to re-verify it and to know who sent it.
fn selected_headers(headers: &HeaderMap) -> serde_json::Value {
    let mut kept = serde_json::Map::new();
    for name in ["stripe-signature", "user-agent", "content-type"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.to_owned(), value.into());
        }
    }
    serde_json::Value::Object(kept)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
