//! A console served by `billhook-worker` (`console::build`) in the test's process, with one
//! operate and one read token, and a client for its JSON API.

use billhook_console::ConsoleSettings;
use billhook_console::tokens::Tokens;
use billhook_testkit::fixtures::{self, ApiShape};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;

pub const OPERATE: &str = "operate-token-0123456789abcdef";
pub const READ: &str = "read-token-0123456789abcdefgh";

pub struct Console {
    pub port: u16,
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Console {
    pub async fn start(pool: &PgPool) -> Self {
        let settings = ConsoleSettings {
            listen: "127.0.0.1:0".to_owned(),
            tokens: Some(
                Tokens::parse(&format!("ops=operate:{OPERATE},dash=read:{READ}")).expect("tokens"),
            ),
        };
        let console = billhook_worker::console::build(pool, &settings).expect("console");
        let port = console.port();
        let base = format!("http://127.0.0.1:{port}/api/v1");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(console.run(async {
            let _ = stopped.await;
        }));
        Self {
            port,
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the console answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }

    pub async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path, Some(READ)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("the console answers");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("joins").expect("stops cleanly");
    }
}

pub fn customer_event(n: usize, event_type: &str) -> Value {
    let mut event = fixtures::event(event_type, ApiShape::Dahlia).expect("fixture");
    event["data"]["object"]["id"] = format!("cus_console{n:03}").into();
    event
}

pub fn ids(page: &Value, key: &str, field: &str) -> Vec<String> {
    page[key]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e[field].as_str().expect("an id").to_owned())
        .collect()
}

/// A browser's view of the console's pages, without a browser: a session cookie kept by hand,
/// redirects not followed (tests look at them).
pub struct Pages {
    pub base: String,
    client: reqwest::Client,
    pub cookie: Option<String>,
}

/// One answer: status, the `Location` and `Set-Cookie` headers, the body.
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Pages {
    pub fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            cookie: None,
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(reqwest::header::LOCATION);
        let set_cookie = header(reqwest::header::SET_COOKIE);
        let status = response.status();
        Answer {
            status,
            location,
            set_cookie,
            body: response.text().await.expect("a body"),
        }
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(cookie) => request.header(reqwest::header::COOKIE, cookie),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let request = self.with_cookie(self.client.get(format!("{}{path}", self.base)));
        Self::answer(request.send().await.expect("the console answers")).await
    }

    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request =
            self.with_cookie(self.client.post(format!("{}{path}", self.base)).form(form));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::answer(request.send().await.expect("the console answers")).await
    }

    /// Logs in with `token`; keeps the session cookie when it works.
    pub async fn login(&mut self, token: &str) -> Answer {
        let answer = self
            .post("/login", &[("token", token), ("next", "/events")], &[])
            .await;
        if let Some(set) = &answer.set_cookie {
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        answer
    }

    /// The CSRF token the forms of `page` carry.
    pub async fn csrf(&self, page: &str) -> String {
        let body = self.get(page).await.body;
        let at = body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        body[at..].split('"').next().expect("a value").to_owned()
    }
}
