//! Who is calling: `Authorization: Bearer TOKEN` against the configured tokens. A console
//! without tokens (allowed on loopback only) treats every caller as `local`, with the operate
//! role. A failure answers 401 and says nothing about the tokens; acting with a `read` token
//! answers 403.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::State;
use crate::api::ApiError;
use crate::tokens::{Caller, Role};

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req))
    }
}

fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<State>>()
        .ok_or_else(|| ApiError::Internal("the console's state is missing".to_owned()))?;
    let Some(tokens) = state.tokens.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(Caller {
            label: "local".to_owned(),
            role: Role::Operate,
        });
    };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    tokens.verify(presented).ok_or(ApiError::Unauthorized)
}

impl Caller {
    /// Refuses a caller whose token may only read.
    pub fn may_operate(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Operate => Ok(()),
            Role::Read => Err(ApiError::Forbidden),
        }
    }
}
