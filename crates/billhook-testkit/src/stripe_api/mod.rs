//! A local HTTP server standing in for Stripe's API (`BILLHOOK_STRIPE_API_BASE` points at it):
//! it serves the objects a test puts in it, lists events and objects with Stripe's paging
//! ([`lists`]), answers DELETE on a subscription by cancelling it, can be told to fail or to
//! stall ([`faults`]), and records every request it got.
//!
//! It runs one actix worker. Handlers never hold the state's lock across an await, so a stalled
//! request does not keep the others from being answered.

mod faults;
mod lists;
mod query;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use faults::Faults;
use lists::Endpoint;
use query::Query;

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: String,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Default)]
struct State {
    /// Every object served, by path (`/v1/{collection}/{id}`).
    objects: HashMap<String, Value>,
    /// The ids in each list, in the order added. The objects themselves stay in `objects`, so
    /// a later `put` or a DELETE that cancels a subscription shows in its list too.
    lists: HashMap<&'static str, Vec<String>>,
    requests: Vec<Recorded>,
    faults: Faults,
}

pub struct StripeStandIn {
    /// Base URL, e.g. `http://127.0.0.1:PORT/`.
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl StripeStandIn {
    /// Starts the server on a free local port; it runs until [`StripeStandIn::stop`].
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

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Serves `object` at `path` (e.g. `/v1/subscriptions/sub_1`).
    pub fn put(&self, path: &str, object: Value) {
        self.state().objects.insert(path.to_owned(), object);
    }

    /// The object now at `path`, as a later GET would return it.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state().objects.get(path).cloned()
    }

    /// Adds an event (a full Stripe event object with `id`, `created`, `type`) to GET
    /// /v1/events; also served at /v1/events/{id}.
    pub fn add_event(&self, event: Value) {
        self.add(lists::EVENTS, event);
    }

    /// Adds an object to the list endpoint of `collection` (one of "customers",
    /// "subscriptions", "invoices", "payment_intents", "charges", "checkout/sessions",
    /// "payment_methods", "webhook_endpoints") and serves it at /v1/{collection}/{id} like
    /// `put` does. Adding an object with an id already present replaces it in place (keeps its
    /// list position).
    pub fn add_object(&self, collection: &str, object: Value) {
        let known = lists::COLLECTIONS.iter().find(|c| **c == collection);
        let collection = known.unwrap_or_else(|| {
            panic!(
                "the Stripe stand-in lists no {collection:?}; one of {:?}",
                lists::COLLECTIONS
            )
        });
        self.add(collection, object);
    }

    fn add(&self, collection: &'static str, object: Value) {
        let id = object["id"]
            .as_str()
            .expect("an object added to a list has a string `id`")
            .to_owned();
        let mut state = self.state();
        let ids = state.lists.entry(collection).or_default();
        if !ids.contains(&id) {
            ids.push(id.clone());
        }
        state
            .objects
            .insert(format!("/v1/{collection}/{id}"), object);
    }

    /// The next `statuses.len()` requests are answered with these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state().faults.fail_next(None, statuses);
    }

    /// The next `statuses.len()` requests with `method` are answered with these statuses.
    pub fn fail_next_method(&self, method: &str, statuses: &[u16]) {
        self.state().faults.fail_next(Some(method), statuses);
    }

    /// The next `count` requests whose path starts with `path_prefix` are answered with
    /// `status` and, when given, a `Retry-After: {secs}` header (Stripe's error JSON body as
    /// today).
    pub fn fail_next_path(
        &self,
        path_prefix: &str,
        status: u16,
        count: usize,
        retry_after_secs: Option<u64>,
    ) {
        self.state()
            .faults
            .fail_next_path(path_prefix, status, count, retry_after_secs);
    }

    /// After `n` more requests whose path starts with `path_prefix` have been answered, every
    /// further such request hangs (never answers) until `release()` is called; used to
    /// interrupt a run half-way.
    pub fn stall_after(&self, path_prefix: &str, n: usize) {
        self.state().faults.stall_after(path_prefix, n);
    }

    /// Answers every request held by a stall and removes all stalls.
    pub fn release(&self) {
        self.state().faults.release();
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// How many requests with this method and exact path have been received.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// Releases any stalled request, then stops the server once in-flight requests are done.
    pub async fn stop(self) {
        self.release();
        self.handle.stop(true).await;
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn answer(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let recorded = Recorded {
        method: request.method().to_string(),
        path: request.path().to_owned(),
        query: request.query_string().to_owned(),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
        idempotency_key: header("idempotency-key"),
    };
    let held = {
        let mut state = lock(&state);
        state.requests.push(recorded.clone());
        state.faults.stall(&recorded.path)
    };
    if let Some(mut released) = held {
        // An error means the sender is gone, which only happens when the server is going away.
        let _ = released.changed().await;
    }
    lock(&state).serve(&recorded)
}

impl State {
    fn serve(&mut self, request: &Recorded) -> HttpResponse {
        if let Some(failure) = self.faults.failure(&request.method, &request.path) {
            return failure.response();
        }
        let path = request.path.as_str();
        // A `put` at a list's path wins over the list.
        if request.method == "GET"
            && !self.objects.contains_key(path)
            && let Some(endpoint) = Endpoint::of(path)
        {
            let items = self.items(endpoint.collection);
            return match lists::answer(&endpoint, &items, &Query::parse(&request.query)) {
                Ok(list) => HttpResponse::Ok().json(list),
                Err(error) => HttpResponse::BadRequest().json(error.body()),
            };
        }
        match (request.method.as_str(), self.objects.get_mut(path)) {
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

    /// The objects listed in `collection`, in the order added.
    fn items(&self, collection: &str) -> Vec<Value> {
        let ids = self.lists.get(collection).into_iter().flatten();
        ids.filter_map(|id| self.objects.get(&format!("/v1/{collection}/{id}")))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(10);

    async fn get(stand_in: &StripeStandIn, path_and_query: &str) -> reqwest::Response {
        let url = format!(
            "{}{}",
            stand_in.base,
            path_and_query.trim_start_matches('/')
        );
        tokio::time::timeout(PATIENCE, reqwest::get(url))
            .await
            .expect("answered in time")
            .expect("a response")
    }

    #[tokio::test]
    async fn a_stalled_list_waits_for_release_while_other_paths_are_answered() {
        let stand_in = StripeStandIn::start().await;
        for n in 0..3 {
            stand_in.add_event(json!({ "id": format!("evt_{n}"), "created": n, "type": "a.b" }));
        }
        stand_in.add_object("customers", json!({ "id": "cus_1", "created": 1 }));
        stand_in.stall_after("/v1/events", 1);

        let first: Value = get(&stand_in, "/v1/events?limit=2")
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(first["has_more"], true);
        let base = stand_in.base.clone();
        let held = tokio::spawn(async move {
            reqwest::get(format!("{base}v1/events?limit=2&starting_after=evt_1")).await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!held.is_finished(), "the second page is held");
        let customers: Value = get(&stand_in, "/v1/customers")
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(customers["data"][0]["id"], "cus_1");
        assert_eq!(get(&stand_in, "/v1/customers/cus_1").await.status(), 200);

        stand_in.release();
        let second = tokio::time::timeout(PATIENCE, held)
            .await
            .expect("released in time")
            .expect("the task ran")
            .expect("a response");
        let second: Value = second.json().await.expect("json");
        assert_eq!(second["data"][0]["id"], "evt_0");
        assert_eq!(stand_in.count("GET", "/v1/events"), 2);
        let queries: Vec<String> = stand_in.requests().into_iter().map(|r| r.query).collect();
        assert!(queries.contains(&"limit=2&starting_after=evt_1".to_owned()));
        stand_in.stop().await;
    }

    #[tokio::test]
    async fn path_failures_say_when_to_retry_and_a_cancel_shows_in_the_list() {
        let stand_in = StripeStandIn::start().await;
        let subscription = json!({ "id": "sub_1", "created": 1, "status": "active" });
        stand_in.add_object("subscriptions", subscription);
        stand_in.fail_next_path("/v1/subscriptions", 429, 1, Some(2));

        let limited = get(&stand_in, "/v1/subscriptions").await;
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "2");
        let refused = get(&stand_in, "/v1/subscriptions?limit=0").await;
        assert_eq!(refused.status(), 400);

        let url = format!("{}v1/subscriptions/sub_1", stand_in.base);
        let cancel = reqwest::Client::new()
            .delete(url)
            .send()
            .await
            .expect("a response");
        assert_eq!(cancel.status(), 200);
        let open: Value = get(&stand_in, "/v1/subscriptions")
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(open["data"], json!([]));
        let all: Value = get(&stand_in, "/v1/subscriptions?status=all")
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(all["data"][0]["status"], "canceled");
        assert_eq!(get(&stand_in, "/v1/prices").await.status(), 404);
        stand_in.stop().await;
    }
}
