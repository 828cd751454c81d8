//! The JSON API under `/api/v1`: every answer is JSON, every error `{"error": "..."}` with its
//! status; nothing in an answer is a token, a secret or a signature header.

pub mod alerts;
pub mod cursor;
pub mod dead_letters;
pub mod events;
pub mod fulfilment;
pub mod records;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/events", web::get().to(events::list))
            .route("/events/{id}", web::get().to(events::show))
            .route("/events/{id}/replay", web::post().to(events::replay))
            .route("/dead-letters", web::get().to(dead_letters::list))
            .route(
                "/dead-letters/requeue",
                web::post().to(dead_letters::requeue),
            )
            .route("/overview", web::get().to(records::overview))
            .route("/customers", web::get().to(records::customer_list))
            .route("/customers/{id}", web::get().to(records::customer))
            .route(
                "/customers/{id}/entitlements",
                web::get().to(records::entitlements),
            )
            .route("/customers/{id}/balance", web::get().to(records::balance))
            .route("/orders", web::get().to(records::order_list))
            .route("/orders/{key}", web::get().to(records::order))
            .route(
                "/orders/{key}/fulfillment",
                web::post().to(fulfilment::mark),
            )
            .route("/dunning-runs", web::get().to(records::dunning_list))
            .route("/dunning-runs/{id}", web::get().to(records::dunning_run))
            .route("/emails", web::get().to(records::email_list))
            .route("/emails/{id}", web::get().to(records::email))
            .route("/notices", web::get().to(records::notice_list))
            .route("/notices/{id}", web::get().to(records::notice))
            .route("/alerts", web::get().to(alerts::list))
            .route("/alerts/{id}", web::get().to(alerts::show))
            .route(
                "/alerts/{id}/acknowledge",
                web::post().to(alerts::acknowledge),
            )
            .default_service(web::to(|| async {
                ApiError::NotFound("no such endpoint".to_owned())
            })),
    );
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid console token is required (Authorization: Bearer …)")]
    Unauthorized,
    #[error("this token may only read; acting needs an operate token")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but the thing is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    #[error("the database is unavailable")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Database(e) = self {
            tracing::error!(error = %e, "console: database error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

/// A page size from the query: 50 unless given, at most 200.
pub fn limit(given: Option<i64>) -> Result<i64, ApiError> {
    match given {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!("limit is 1 to 200, not {n}"))),
    }
}
