//! console-load: the latency of every console endpoint, API and pages, on a database seeded
//! by bench/console-seed.sql and served by `billhook-worker console`. For each endpoint it
//! sends a few warm-up requests, then `--requests` more one after another (each show page
//! cycling through real ids read from the database), and reports p50/p95/p99/max in
//! milliseconds, measured from sending to the last byte; then all endpoints together from
//! `--clients` clients for `--mixed-seconds`. Any answer other than 2xx fails the run.
//!
//! Benchmark tooling, never a test: the numbers depend on the machine.

mod endpoints;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use load_common::percentiles::{micros, percentile};
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// The console, e.g. http://127.0.0.1:9090
    #[arg(long)]
    base: String,
    /// An operate or read token of the console.
    #[arg(long, env = "CONSOLE_LOAD_TOKEN", hide_env_values = true)]
    token: String,
    /// The seeded database (to pick real ids).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Timed requests per endpoint.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Clients of the mixed run.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    #[arg(long, default_value_t = 15)]
    mixed_seconds: u64,
    /// Where to write the results as JSON.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// One endpoint: a name, whether it is a page, and the paths it cycles through.
pub struct Endpoint {
    pub name: String,
    pub page: bool,
    pub paths: Vec<String>,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    cookie: String,
}

impl Client {
    async fn get(&self, endpoint: &Endpoint, path: &str) -> anyhow::Result<Duration> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        request = if endpoint.page {
            request.header(reqwest::header::COOKIE, &self.cookie)
        } else {
            request.bearer_auth(&self.token)
        };
        let started = Instant::now();
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        let took = started.elapsed();
        anyhow::ensure!(
            status.is_success(),
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        Ok(took)
    }
}

async fn login(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let response = http
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("token={token}&next=%2F"))
        .send()
        .await?;
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("the console set no session cookie: is the token right?")?;
    Ok(cookie.to_owned())
}

fn summary(mut latencies: Vec<u64>) -> serde_json::Value {
    latencies.sort_unstable();
    json!({
        "requests": latencies.len(),
        "p50_ms": percentile(&latencies, 0.50),
        "p95_ms": percentile(&latencies, 0.95),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await
        .context("cannot reach the seeded database")?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let cookie = login(&http, &args.base, &args.token).await?;
    let client = Client {
        http,
        base: args.base.trim_end_matches('/').to_owned(),
        token: args.token.clone(),
        cookie,
    };
    let endpoints = endpoints::all(&pool, &client).await?;
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "endpoint", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    let mut results = Vec::new();
    let mut slow = Vec::new();
    for endpoint in &endpoints {
        for path in endpoint.paths.iter().cycle().take(5) {
            client.get(endpoint, path).await?;
        }
        let mut latencies = Vec::with_capacity(args.requests);
        for path in endpoint.paths.iter().cycle().take(args.requests) {
            latencies.push(micros(client.get(endpoint, path).await?));
        }
        let s = summary(latencies);
        println!(
            "{:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            endpoint.name,
            s["p50_ms"].as_f64().unwrap_or(0.0),
            s["p95_ms"].as_f64().unwrap_or(0.0),
            s["p99_ms"].as_f64().unwrap_or(0.0),
            s["max_ms"].as_f64().unwrap_or(0.0)
        );
        if s["p99_ms"].as_f64().unwrap_or(0.0) >= 100.0 {
            slow.push(endpoint.name.clone());
        }
        results.push(json!({ "endpoint": endpoint.name, "page": endpoint.page, "sequential": s }));
    }

    // Every endpoint at once from several clients.
    let client = std::sync::Arc::new(client);
    let endpoints = std::sync::Arc::new(endpoints);
    let until = Instant::now() + Duration::from_secs(args.mixed_seconds);
    let mut tasks = Vec::new();
    for n in 0..args.clients {
        let client = client.clone();
        let endpoints = endpoints.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = n;
            while Instant::now() < until {
                let endpoint = &endpoints[i % endpoints.len()];
                let path = &endpoint.paths[(i / endpoints.len()) % endpoint.paths.len()];
                latencies.push(micros(client.get(endpoint, path).await?));
                i += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut mixed = Vec::new();
    for task in tasks {
        mixed.extend(task.await??);
    }
    let mixed = summary(mixed);
    println!(
        "mixed, {} clients: {} requests, p50 {} ms, p99 {} ms, max {} ms",
        args.clients, mixed["requests"], mixed["p50_ms"], mixed["p99_ms"], mixed["max_ms"]
    );
    let report = json!({ "endpoints": results, "mixed": mixed, "clients": args.clients, "over_100ms_p99": slow });
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&report)?)?;
    }
    if !slow.is_empty() {
        println!("p99 of 100 ms or more: {}", slow.join(", "));
    }
    Ok(())
}
