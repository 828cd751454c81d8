//! A real HTTP server on 127.0.0.1:0 standing in for whatever Billhook posts to: the host
//! application's notices, a Slack-compatible incoming webhook. It records each request and
//! answers from a script (e.g. 500 twice, then 200), so a test sees retries and recoveries.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One request the application received, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

struct Script {
    /// Statuses for the next requests, in order; `then` after they run out.
    next: VecDeque<u16>,
    then: u16,
    received: Vec<Received>,
}

/// A receiver of webhooks (the host application, a Slack-style incoming webhook): records
/// every request and answers from its script.
pub struct HookServer {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl HookServer {
    /// Answers the statuses in `next` in order, then `then` to every request.
    pub fn start(next: &[u16], then: u16) -> Self {
        let script = Arc::new(Mutex::new(Script {
            next: next.iter().copied().collect(),
            then,
            received: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("address").port();
        let state = web::Data::new(script.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                // Any path: a Slack-style URL carries its credential in the path.
                .default_service(web::post().to(hook))
        })
        .disable_signals()
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/billing"),
            script,
        }
    }

    /// The requests so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().expect("script lock").received.clone()
    }
}

async fn hook(
    request: HttpRequest,
    body: web::Bytes,
    script: web::Data<Arc<Mutex<Script>>>,
) -> HttpResponse {
    let mut script = script.lock().expect("script lock");
    let answered = script.next.pop_front().unwrap_or(script.then);
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    script.received.push(Received {
        headers,
        body: body.to_vec(),
        answered,
    });
    HttpResponse::build(StatusCode::from_u16(answered).expect("status")).finish()
}
