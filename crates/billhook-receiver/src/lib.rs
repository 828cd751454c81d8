//! billhook-receiver: the thin service Stripe calls. It verifies each delivery, stores the
//! event and enqueues its job in one transaction, and answers. Everything that can fail after
//! the event is safely stored belongs to the worker.

pub mod metrics;
pub mod rate_limit;
pub mod rejections;
pub mod routes;
pub mod writer;

use std::future::Future;
use std::net::TcpListener;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use billhook_core::config::ReceiverSettings;
use billhook_core::stripe::WebhookSecrets;
use sqlx::PgPool;

use crate::metrics::Metrics;
use crate::rate_limit::RejectLimiter;
use crate::writer::{IngestQueue, WriterSettings};

/// The public paths of the webhook endpoint.
pub const WEBHOOK_PATHS: [&str; 2] = ["/api/webhooks/stripe", "/webhooks/stripe"];

/// What every request handler shares. Built once per `Application`.
pub struct AppState {
    pub pool: PgPool,
    pub ingest: IngestQueue,
    pub secrets: WebhookSecrets,
    pub tolerance_secs: i64,
    pub max_body_bytes: usize,
    pub db_timeout: Duration,
    pub body_timeout: Duration,
    pub trust_forwarded_for: bool,
    pub reject_limiter: RejectLimiter,
    pub metrics: Metrics,
    /// Rejected deliveries, counted here and written to the database now and then.
    pub rejections: rejections::Rejections,
    /// How often they are written.
    pub rejections_flush: Duration,
    /// The last answer of the storage check the public `GET` shows, and when it was taken.
    pub storage_seen: routes::endpoint_info::SeenStorage,
}

/// Both listeners, bound and ready to run. `build` binds the sockets, so a test can ask for
/// port 0 and read the real ports before running.
pub struct Application {
    port: u16,
    admin_port: u16,
    state: web::Data<AppState>,
    server: Server,
    admin: Server,
}

impl Application {
    /// Connects to PostgreSQL, refuses an unmigrated database, and binds both listeners.
    pub async fn build(settings: ReceiverSettings) -> anyhow::Result<Self> {
        let pool = billhook_core::db::connect(&settings.database).await?;
        billhook_core::db::check_migrated(&pool).await?;
        Self::build_with_pool(settings, pool)
    }

    /// Binds both listeners around an existing pool (which may be lazy: nothing here touches
    /// the database) and starts the ingest writers on the current Tokio runtime.
    pub fn build_with_pool(settings: ReceiverSettings, pool: PgPool) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let ingest = IngestQueue::start(
            pool.clone(),
            WriterSettings {
                writers: settings.ingest_writers as usize,
                max_batch: settings.ingest_max_batch as usize,
                max_attempts: settings.process_event_max_attempts,
            },
            metrics.clone(),
        );
        let state = web::Data::new(AppState {
            pool,
            ingest,
            tolerance_secs: i64::try_from(settings.signature_tolerance.as_secs())
                .context("BILLHOOK_SIGNATURE_TOLERANCE is too large")?,
            secrets: settings.secrets,
            max_body_bytes: settings.max_body_bytes,
            db_timeout: settings.database.timeout,
            body_timeout: settings.request_body_timeout,
            trust_forwarded_for: settings.trust_forwarded_for,
            reject_limiter: RejectLimiter::new(
                NonZeroU32::new(settings.reject_limit_per_minute)
                    .context("BILLHOOK_REJECT_LIMIT_PER_MINUTE must be at least 1")?,
                NonZeroU32::new(settings.reject_burst)
                    .context("BILLHOOK_REJECT_BURST must be at least 1")?,
            ),
            metrics,
            rejections: Default::default(),
            rejections_flush: settings.rejections_flush,
            storage_seen: Default::default(),
        });

        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let admin_listener = TcpListener::bind(&settings.admin_listen)
            .with_context(|| format!("cannot listen on {}", settings.admin_listen))?;
        let admin_port = admin_listener.local_addr()?.port();

        let shutdown_secs = settings.shutdown_timeout.as_secs().max(1);
        let webhook_state = state.clone();
        let workers = settings.http_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let server = HttpServer::new(move || {
            // A resource (not a bare route) so other methods get 405, not 404.
            App::new().app_data(webhook_state.clone()).service(
                web::resource(WEBHOOK_PATHS)
                    .route(web::post().to(routes::webhook::receive))
                    .route(web::get().to(routes::endpoint_info::describe)),
            )
        })
        .disable_signals()
        .shutdown_timeout(shutdown_secs)
        .workers(workers)
        // Slow or idle clients cannot hold connections: the head must arrive within its
        // timeout (else 408), the body within its own (routes::webhook), and an idle
        // kept-alive connection is closed. Past the connection limit, new connections wait in
        // the listen backlog. actix counts connections per worker thread.
        .client_request_timeout(settings.request_head_timeout)
        .keep_alive(settings.keep_alive)
        .max_connections(
            (settings.http_max_connections as usize)
                .div_ceil(workers)
                .max(1),
        )
        .listen(listener)?
        .run();

        let admin_state = state.clone();
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .route("/healthz", web::get().to(routes::admin::healthz))
                .route("/readyz", web::get().to(routes::admin::readyz))
                .route("/metrics", web::get().to(routes::admin::metrics))
        })
        .disable_signals()
        .shutdown_timeout(shutdown_secs)
        .workers(1)
        .listen(admin_listener)?
        .run();

        Ok(Self {
            port,
            admin_port,
            state,
            server,
            admin,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish (up to the shutdown timeout) and returns.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let server_handle = self.server.handle();
        let admin_handle = self.admin.handle();
        tracing::info!(
            port = self.port,
            admin_port = self.admin_port,
            "billhook-receiver listening"
        );
        let state = Arc::clone(&self.state.clone().into_inner());
        let sweeper = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                state.reject_limiter.forget_idle();
            }
        });
        let flusher = tokio::spawn(
            self.state
                .rejections
                .clone()
                .flush_every(self.state.pool.clone(), self.state.rejections_flush),
        );
        let servers = async {
            let (a, b) = tokio::join!(self.server, self.admin);
            a.and(b)
        };
        tokio::pin!(servers);
        tokio::select! {
            result = &mut servers => {
                sweeper.abort();
                flusher.abort();
                return result.context("HTTP server failed");
            }
            () = shutdown => {}
        }
        tracing::info!("draining in-flight requests");
        // The servers' own futures process the stop command, so they must keep being polled
        // while it is sent.
        let stop = async {
            tokio::join!(server_handle.stop(true), admin_handle.stop(true));
        };
        let (result, ()) = tokio::join!(servers, stop);
        sweeper.abort();
        flusher.abort();
        // What was counted since the last flush goes now, before the pool closes.
        if let Err(e) = self.state.rejections.flush(&self.state.pool).await {
            tracing::warn!(error = %format!("{e:#}"), pending = self.state.rejections.pending(),
                "rejected deliveries of the last seconds could not be written");
        }
        self.state.pool.close().await;
        tracing::info!("billhook-receiver stopped");
        result.context("HTTP server failed")
    }
}
