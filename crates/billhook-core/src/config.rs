//! Settings read from the environment (and the same names as command-line flags), validated
//! at start: a missing secret or database URL stops the process with a clear message instead
//! of surfacing as a 500 on the first webhook. Every setting is documented where it is
//! declared, and `--help` prints them all with their defaults; docs/configuration.md is the
//! reference page.

use std::time::Duration;

use secrecy::SecretString;

use crate::stripe::WebhookSecrets;

/// Where PostgreSQL is and how much of it a process may use.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseSettings {
    /// PostgreSQL connection URL, e.g. postgres://billhook@127.0.0.1:5432/billhook.
    #[arg(long = "database-url", env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true, value_parser = Secret(secret))]
    pub url: SecretString,

    /// Most connections this process opens.
    #[arg(long = "database-max-connections", env = "BILLHOOK_DATABASE_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Connections kept open while idle, so the first requests after start do not pay for
    /// connecting.
    #[arg(
        long = "database-min-connections",
        env = "BILLHOOK_DATABASE_MIN_CONNECTIONS",
        default_value_t = 4
    )]
    pub min_connections: u32,

    /// Longest wait for a connection or a database round trip before giving up (the receiver
    /// then answers 503 so Stripe retries).
    #[arg(long = "database-timeout", env = "BILLHOOK_DATABASE_TIMEOUT", default_value = "2s",
          value_parser = positive_duration)]
    pub timeout: Duration,
}

/// Logs and traces.
#[derive(clap::Args, Debug, Clone)]
pub struct TelemetrySettings {
    /// Log filter in tracing's EnvFilter syntax.
    #[arg(long = "log", env = "BILLHOOK_LOG", default_value = "info")]
    pub log_filter: String,

    /// Log format: `json` (one object per line) or `text` for a terminal.
    #[arg(
        long = "log-format",
        env = "BILLHOOK_LOG_FORMAT",
        default_value = "json"
    )]
    pub log_format: LogFormat,

    /// OTLP/HTTP collector endpoint (e.g. http://127.0.0.1:4318); spans go to
    /// `<endpoint>/v1/traces`. Traces are exported only when this is set.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Everything `billhook-receiver` reads.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "billhook-receiver",
    version,
    about = "Receives Stripe webhooks: verifies, stores and enqueues them."
)]
pub struct ReceiverSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Address the webhook listener binds (Stripe calls this one).
    #[arg(
        long = "listen",
        env = "BILLHOOK_RECEIVER_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: String,

    /// Address of the internal listener: /healthz, /readyz, /metrics. Keep it private.
    #[arg(
        long = "admin-listen",
        env = "BILLHOOK_RECEIVER_ADMIN_LISTEN",
        default_value = "127.0.0.1:9080"
    )]
    pub admin_listen: String,

    /// Endpoint signing secrets, comma-separated, each optionally labelled:
    /// `whsec_…` or `primary=whsec_…,connect=whsec_…`. The label of the secret that matched
    /// is stored with the event. Several are normal while rotating.
    #[arg(long = "webhook-secrets", env = "BILLHOOK_WEBHOOK_SECRETS", value_name = "BILLHOOK_WEBHOOK_SECRETS", hide_env_values = true,
          value_parser = Secret(webhook_secrets))]
    pub secrets: WebhookSecrets,

    /// Largest accepted distance between the signature's timestamp and now. 0 is refused:
    /// it would accept replays forever or nothing at all.
    #[arg(long = "signature-tolerance", env = "BILLHOOK_SIGNATURE_TOLERANCE", default_value = "300s",
          value_parser = positive_duration)]
    pub signature_tolerance: Duration,

    /// Largest accepted request body, in bytes; larger ones get 413.
    #[arg(
        long = "max-body-bytes",
        env = "BILLHOOK_MAX_BODY_BYTES",
        default_value_t = 1_048_576
    )]
    pub max_body_bytes: usize,

    /// Requests that fail verification allowed per client address per minute before the
    /// answer becomes 429. Verified requests are never limited.
    #[arg(long = "reject-limit-per-minute", env = "BILLHOOK_REJECT_LIMIT_PER_MINUTE", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reject_limit_per_minute: u32,

    /// Failed verifications a client address may make in a burst before the limit applies.
    #[arg(long = "reject-burst", env = "BILLHOOK_REJECT_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub reject_burst: u32,

    /// Take the client address from X-Forwarded-For / Forwarded (only behind a proxy you run).
    #[arg(
        long = "trust-forwarded-for",
        env = "BILLHOOK_TRUST_FORWARDED_FOR",
        default_value_t = false
    )]
    pub trust_forwarded_for: bool,

    /// Attempts the worker makes at each ProcessEvent job before it is dead-lettered.
    #[arg(long = "process-event-max-attempts", env = "BILLHOOK_PROCESS_EVENT_MAX_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub process_event_max_attempts: u32,

    /// Transactions that store events at the same time, each on one pooled connection.
    /// Requests that arrive while they are busy are stored together in the next one.
    #[arg(long = "ingest-writers", env = "BILLHOOK_INGEST_WRITERS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub ingest_writers: u32,

    /// Events stored in one transaction at most.
    #[arg(long = "ingest-max-batch", env = "BILLHOOK_INGEST_MAX_BATCH", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub ingest_max_batch: u32,

    /// Longest wait for a request's head (request line and headers), from the connection's
    /// start or its previous request; a slower client gets 408 and is disconnected.
    #[arg(long = "request-head-timeout", env = "BILLHOOK_REQUEST_HEAD_TIMEOUT", default_value = "5s",
          value_parser = positive_duration)]
    pub request_head_timeout: Duration,

    /// Longest wait for a request's whole body once its head has arrived; a slower client gets
    /// 408 and is disconnected. Stripe sends a body in one go.
    #[arg(long = "request-body-timeout", env = "BILLHOOK_REQUEST_BODY_TIMEOUT", default_value = "10s",
          value_parser = positive_duration)]
    pub request_body_timeout: Duration,

    /// How often the counts of rejected deliveries (per minute and reason) are written to the
    /// database.
    #[arg(long = "rejections-flush", env = "BILLHOOK_REJECTIONS_FLUSH", default_value = "10s",
          value_parser = positive_duration)]
    pub rejections_flush: Duration,

    /// How long an idle kept-alive connection stays open.
    #[arg(long = "keep-alive", env = "BILLHOOK_KEEP_ALIVE", default_value = "5s",
          value_parser = positive_duration)]
    pub keep_alive: Duration,

    /// Most connections the webhook listener serves at once; more wait in the listen backlog
    /// until one closes.
    #[arg(long = "http-max-connections", env = "BILLHOOK_HTTP_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,

    /// HTTP worker threads (default: one per core).
    #[arg(long = "http-workers", env = "BILLHOOK_HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// How long SIGTERM waits for in-flight requests before closing.
    #[arg(long = "shutdown-timeout", env = "BILLHOOK_SHUTDOWN_TIMEOUT", default_value = "30s",
          value_parser = positive_duration)]
    pub shutdown_timeout: Duration,

    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// The value parser of a setting that holds a secret: its error names the setting and the
/// reason, never the value. clap's own message for a refused value quotes it whole, which would
/// put a webhook secret or a console token that sits beside a malformed one into a terminal, a
/// journal or CI's log.
#[derive(Clone, Copy)]
pub struct Secret<T>(pub fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Secret<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .and_then(clap::Arg::get_env)
            .map(|env| env.to_string_lossy().into_owned())
            .or_else(|| arg.map(ToString::to_string))
            .unwrap_or_else(|| "a secret setting".to_owned());
        let refused = |reason: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name} (not shown): {reason}\n"),
            )
            .with_cmd(cmd)
        };
        let value = value.to_str().ok_or_else(|| refused("not UTF-8"))?;
        (self.0)(value).map_err(|e| refused(&e))
    }
}

fn secret(value: &str) -> Result<SecretString, String> {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(value.to_owned()))
}

fn webhook_secrets(value: &str) -> Result<WebhookSecrets, String> {
    WebhookSecrets::parse(value).map_err(|e| e.to_string())
}

/// A duration such as `300s`, `2s`, `500ms` or `3d`; zero is refused.
pub fn positive_duration(value: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(value).map_err(|e| format!("`{value}`: {e}"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Parses the command line (and environment) into `C`, or exits as clap does: with its message
/// and status 2. A missing database URL gets a hint at where scripts/dev.sh keeps one.
pub fn parse_or_exit<C: clap::Parser>() -> C {
    let parsed = command::<C>()
        .try_get_matches()
        .and_then(|mut matches| C::from_arg_matches_mut(&mut matches));
    parsed.unwrap_or_else(|error| {
        if error.kind() == clap::error::ErrorKind::MissingRequiredArgument
            && error.to_string().contains("--database-url")
        {
            eprint!("{}", error.render());
            eprintln!("\n{DATABASE_URL_HINT}");
            std::process::exit(2);
        }
        error.exit()
    })
}

/// The command line of `C` as `--help` shows it: a setting read from the environment has its
/// variable's name as placeholder (`--notify-url <BILLHOOK_NOTIFY_URL>`), so that one name
/// is shown for one setting everywhere, a missing-setting error included.
pub fn command<C: clap::CommandFactory>() -> clap::Command {
    C::command().mut_args(
        |arg| match arg.get_env().map(|e| e.to_string_lossy().into_owned()) {
            Some(env) => arg.value_name(env),
            None => arg,
        },
    )
}

/// What to do about a missing database URL.
pub const DATABASE_URL_HINT: &str = "hint: set DATABASE_URL (or pass --database-url) to your PostgreSQL database, \
e.g. postgres://billhook@127.0.0.1:5432/billhook. scripts/dev.sh keeps the URL of its database in \
.dev/database-url: export DATABASE_URL=$(cat .dev/database-url)";

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap checks its definition (unique ids, flags, defaults) only when a command line is
    /// parsed: a clash would otherwise surface as a panic at the receiver's start.
    #[test]
    fn the_receiver_command_line_is_well_formed() {
        super::ReceiverSettings::command().debug_assert();
    }
}
