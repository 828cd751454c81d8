//! billhook-console: what an operator (or the host application's tools) sees of Billhook and
//! does with it, over HTTP: web pages ([`pages`]) and the JSON API under `/api/v1` ([`api`]),
//! both over the same queries ([`query`]): the overview, events, dead letters, customers,
//! orders, dunning runs, emails and notices.
//!
//! It reads Billhook's tables directly and acts only through [`Actions`], which
//! `billhook-worker` provides with the code its command line runs. Access is by token
//! ([`tokens`]): `Authorization: Bearer` for the API, a signed session cookie for the pages
//! ([`session`]), `read` or `operate`; without tokens it serves on a loopback address only.

pub mod actions;
pub mod api;
pub mod auth;
pub mod pages;
pub mod query;
pub mod session;
pub mod settings;
pub mod tokens;

use std::future::Future;
use std::net::{TcpListener, ToSocketAddrs as _};
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use sqlx::PgPool;

pub use actions::{AckError, Actions, MarkError, MarkOrder, MarkedOrder, RequeueRequest, Requeued};
pub use settings::ConsoleSettings;
use tokens::Tokens;

/// What every request handler can reach.
pub struct State {
    pub pool: PgPool,
    pub tokens: Option<Tokens>,
    pub actions: Arc<dyn Actions>,
    /// Signs page sessions of a console without tokens (loopback only): random per process.
    pub local_key: [u8; 32],
    pub logins: pages::throttle::LoginThrottle,
}

/// A console bound to its address, ready to serve.
pub struct Console {
    listener: TcpListener,
    state: web::Data<State>,
}

impl Console {
    /// Binds the listener; refuses to serve without tokens on an address others can reach.
    pub fn build(
        pool: PgPool,
        settings: &ConsoleSettings,
        actions: Arc<dyn Actions>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.is_off(),
            "BILLHOOK_CONSOLE_LISTEN is `off`: give the console an address (127.0.0.1:9090) to serve it"
        );
        let open = settings.tokens.as_ref().is_none_or(Tokens::is_empty);
        if open && !loopback_only(&settings.listen)? {
            anyhow::bail!(
                "the console would be open to anyone who reaches {}: set BILLHOOK_CONSOLE_TOKENS, \
                 or listen on a loopback address (127.0.0.1:9090)",
                settings.listen
            );
        }
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("the console cannot listen on {}", settings.listen))?;
        if open {
            tracing::warn!(listen = %settings.listen,
                "the console has no tokens: anyone on this machine can read and act (set BILLHOOK_CONSOLE_TOKENS)");
        }
        Ok(Self {
            listener,
            state: web::Data::new(State {
                pool,
                tokens: settings.tokens.clone(),
                actions,
                local_key: rand::random(),
                logins: pages::throttle::LoginThrottle::default(),
            }),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let port = self.port();
        let state = self.state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(64 * 1024)
                        .error_handler(|e, _| {
                            api::ApiError::BadRequest(format!(
                                "the request body is not valid JSON for this call: {e}"
                            ))
                            .into()
                        }),
                )
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    api::ApiError::BadRequest(format!("bad query: {e}")).into()
                }))
                // A bulk requeue's confirmation carries the ids it counted.
                .app_data(web::FormConfig::default().limit(256 * 1024))
                .configure(api::routes)
                .configure(pages::routes)
        })
        .workers(2)
        .disable_signals()
        // Requests in flight get this long at shutdown; idle keep-alive connections do not
        // hold the stop up.
        .shutdown_timeout(5)
        .listen(self.listener)
        .context("the console cannot serve")?
        .run();
        let handle = server.handle();
        tracing::info!(port, "console serving");
        serve_until(server, shutdown, handle).await
    }
}

/// Runs `server` until it ends or `shutdown` completes, then lets requests in flight finish.
async fn serve_until(
    server: actix_web::dev::Server,
    shutdown: impl Future<Output = ()>,
    handle: actix_web::dev::ServerHandle,
) -> anyhow::Result<()> {
    let server = std::pin::pin!(server);
    let shutdown = std::pin::pin!(shutdown);
    match futures_util::future::select(server, shutdown).await {
        futures_util::future::Either::Left((result, _)) => Ok(result?),
        futures_util::future::Either::Right(((), server)) => {
            // The stop command goes out now; the server future must be polled to carry it out.
            let stopped = handle.stop(true);
            let result = server.await;
            stopped.await;
            Ok(result?)
        }
    }
}

/// Whether every address `listen` names is a loopback one.
fn loopback_only(listen: &str) -> anyhow::Result<bool> {
    let addresses: Vec<_> = listen
        .to_socket_addrs()
        .with_context(|| format!("BILLHOOK_CONSOLE_LISTEN `{listen}` is not host:port"))?
        .collect();
    Ok(!addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback()))
}
