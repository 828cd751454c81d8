//! `TestReceiver`: the receiver on port 0 against a database of its own, with helpers to
//! deliver signed events as Stripe would.

use std::time::Duration;

use billhook_core::config::{DatabaseSettings, LogFormat, ReceiverSettings, TelemetrySettings};
use billhook_core::stripe::{WebhookSecret, WebhookSecrets};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::TestDatabase;
use crate::fixtures;

/// The secret test receivers are configured with unless a test says otherwise.
pub const TEST_SECRET: &str = "whsec_test_billhook_0123456789abcdef";

/// Settings for a receiver on ephemeral ports against `database_url`.
pub fn settings(database_url: &str) -> ReceiverSettings {
    ReceiverSettings {
        database: DatabaseSettings {
            url: SecretString::from(database_url.to_owned()),
            max_connections: 8,
            min_connections: 1,
            timeout: Duration::from_secs(2),
        },
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        secrets: WebhookSecrets::new(vec![WebhookSecret::new("primary", TEST_SECRET)])
            .unwrap_or_else(|e| panic!("{e}")),
        signature_tolerance: Duration::from_secs(300),
        max_body_bytes: 1024 * 1024,
        reject_limit_per_minute: 60,
        reject_burst: 20,
        trust_forwarded_for: false,
        process_event_max_attempts: 10,
        ingest_writers: 2,
        ingest_max_batch: 64,
        request_head_timeout: Duration::from_secs(5),
        request_body_timeout: Duration::from_secs(10),
        keep_alive: Duration::from_secs(5),
        rejections_flush: Duration::from_millis(200),
        http_max_connections: 1024,
        http_workers: Some(1),
        shutdown_timeout: Duration::from_secs(5),
        telemetry: TelemetrySettings {
            log_filter: "info".into(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
        },
    }
}

pub struct TestReceiver {
    pub db: TestDatabase,
    pub address: String,
    pub admin_address: String,
    pub secret: WebhookSecret,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestReceiver {
    /// A receiver with the default test settings on a fresh, migrated database.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, with settings adjusted by `configure` first.
    pub async fn spawn_with(configure: impl FnOnce(&mut ReceiverSettings)) -> Self {
        let db = TestDatabase::new().await;
        let mut settings = settings(&db.url);
        configure(&mut settings);
        let app = billhook_receiver::Application::build(settings.clone())
            .await
            .unwrap_or_else(|e| panic!("receiver starts: {e:#}"));
        Self::start(db, settings, app)
    }

    /// Starts an already built application (for tests that need a special pool).
    pub fn start(
        db: TestDatabase,
        settings: ReceiverSettings,
        app: billhook_receiver::Application,
    ) -> Self {
        let address = format!("http://127.0.0.1:{}", app.port());
        let admin_address = format!("http://127.0.0.1:{}", app.admin_port());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Self {
            db,
            address,
            admin_address,
            secret: settings.secrets.first().clone(),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/api/webhooks/stripe", self.address)
    }

    /// Signs `event` as Stripe would (now, with the receiver's first secret) and posts it.
    pub async fn deliver(&self, event: &Value) -> reqwest::Response {
        let body = fixtures::to_body(event);
        let signature = self.secret.sign(fixtures::unix_now(), &body);
        self.post(body, Some(signature)).await
    }

    /// Posts raw bytes with the given `Stripe-Signature` header (none when `None`).
    pub async fn post(&self, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.webhook_url())
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(body);
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST to the receiver: {e}"))
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.admin_address))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Stops the receiver gracefully and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_server().await
    }

    /// Stops the receiver gracefully and waits for it, keeping its database for a look after.
    pub async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
