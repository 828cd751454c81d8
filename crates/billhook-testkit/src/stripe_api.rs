//! A local HTTP server standing in for Stripe's API (`BILLHOOK_STRIPE_API_BASE` points at it):
//! it serves the objects a test puts in it, answers DELETE on a subscription by cancelling it,
//! can be told to fail, and records every request it got.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct State {
    objects: HashMap<String, Value>,
    requests: Vec<Recorded>,
    /// Answer these statuses to the next requests (of one method, if given), in order.
    failures: Vec<(Option<String>, u16)>,
}

pub struct StripeStandIn {
    /// Base URL, e.g. `http://127.0.0.1:PORT/`.
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl StripeStandIn {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Stripe stand-in");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}/"),
            state,
            handle,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `object` at `path` (e.g. `/v1/subscriptions/sub_1`).
    pub fn put(&self, path: &str, object: Value) {
        self.state().objects.insert(path.to_owned(), object);
    }

    /// The object now at `path`, as a later GET would return it.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state().objects.get(path).cloned()
    }

    /// The next `statuses.len()` requests are answered with these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state()
            .failures
            .extend(statuses.iter().map(|s| (None, *s)));
    }

    /// The next `statuses.len()` requests with `method` are answered with these statuses.
    pub fn fail_next_method(&self, method: &str, statuses: &[u16]) {
        let method = Some(method.to_owned());
        self.state()
            .failures
            .extend(statuses.iter().map(|s| (method.clone(), *s)));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn answer(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let path = request.path().to_owned();
    state.requests.push(Recorded {
        method: request.method().to_string(),
        path: path.clone(),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
        idempotency_key: header("idempotency-key"),
    });
    let method = request.method().as_str().to_owned();
    let failure = state
        .failures
        .iter()
        .position(|(m, _)| m.as_ref().is_none_or(|m| *m == method));
    if let Some(index) = failure {
        let (_, status) = state.failures.remove(index);
        let status = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
        return HttpResponse::build(status)
            .json(json!({ "error": { "type": "api_error", "message": "injected failure" } }));
    }
    match (method.as_str(), state.objects.get_mut(&path)) {
        ("GET", Some(object)) => HttpResponse::Ok().json(object.clone()),
        ("DELETE", Some(object)) if path.starts_with("/v1/subscriptions/") => {
            object["status"] = "canceled".into();
            object["canceled_at"] = crate::fixtures::unix_now().into();
            object["ended_at"] = crate::fixtures::unix_now().into();
            HttpResponse::Ok().json(object.clone())
        }
        _ => HttpResponse::NotFound().json(json!({ "error": { "type": "invalid_request_error",
            "message": format!("No such object: {path}") } })),
    }
}
