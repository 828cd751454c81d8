//! billhook-trigger: signs realistic events and posts them to a receiver, as `stripe trigger`
//! would: one event of a type, or a story's events that belong together, after which it waits
//! for the worker and tells what Billhook did. For local development (scripts/trigger.sh).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use billhook_core::stripe::WebhookSecrets;
use billhook_testkit::examples;
use billhook_testkit::fixtures::{self, ApiShape, EVENT_TYPES};
use billhook_testkit::objects::Cast;
use billhook_testkit::stories::Story;
use billhook_testkit::trigger::{self, Database, Receiver, SEND_TIMEOUT, Telling};
use clap::Parser as _;

/// The checkout this tool was built from: scripts/dev.sh keeps its files in `.dev` there.
fn checkout() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    path.canonicalize().unwrap_or(path)
}

#[derive(clap::Parser)]
#[command(
    name = "billhook-trigger",
    about = "Sign built-in Stripe events and POST them to a receiver: one event, or a story's events \
             that belong together, then what Billhook did with them."
)]
struct Args {
    /// Event type, e.g. payment_intent.succeeded (see --list).
    #[arg(required_unless_present_any = ["list", "story", "list_stories"])]
    event_type: Option<String>,

    /// Send a story's events (fresh ids, current dates), wait until the worker has applied
    /// them and show what Billhook did (see --list-stories, or --story --list).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "",
          conflicts_with = "event_type")]
    story: Option<String>,

    /// Where to post.
    #[arg(
        long,
        env = "BILLHOOK_TRIGGER_URL",
        default_value = "http://127.0.0.1:8080/api/webhooks/stripe"
    )]
    url: String,

    /// The receiver's secrets; the first one signs.
    #[arg(
        long = "webhook-secrets",
        env = "BILLHOOK_WEBHOOK_SECRETS",
        hide_env_values = true
    )]
    secrets: Option<String>,

    /// Payload shape: acacia (API 2025-02-24) or dahlia (2026-07-29, after 2025-03-31).
    #[arg(long = "api-version", default_value = "dahlia")]
    api_version: Shape,

    /// For a story: the database the worker writes. Unset: the URL in .dev/database-url
    /// (written by scripts/dev.sh).
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// For a story: where the worker writes emails as .eml files (default: .dev/mail, as
    /// scripts/dev.sh sets it), to point at each of the story's emails.
    #[arg(long = "email-dir", env = "BILLHOOK_EMAIL_DIR")]
    email_dir: Option<PathBuf>,

    /// For a story: the longest wait, in seconds, for the worker to apply a chapter of events.
    #[arg(long = "wait", value_name = "SECONDS", default_value_t = 30)]
    wait: u64,

    /// List the event types with a built-in example (with --story: the stories) and exit.
    #[arg(long)]
    list: bool,

    /// List the stories and exit.
    #[arg(long)]
    list_stories: bool,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Shape {
    Acacia,
    Dahlia,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list_stories || (args.list && args.story.is_some()) {
        print!("{}", stories_list());
        return Ok(());
    }
    if args.list {
        EVENT_TYPES.iter().for_each(|t| println!("{t}"));
        return Ok(());
    }
    let story = match args.story.as_deref() {
        None => None,
        Some(name) => match Story::from_name(name) {
            Some(story) => Some(story),
            None if name.is_empty() => bail!("--story needs a story's name:\n{}", stories_list()),
            None => bail!(
                "there is no story `{name}`; the stories:\n{}",
                stories_list()
            ),
        },
    };
    let shape = match args.api_version {
        Shape::Acacia => ApiShape::Acacia,
        Shape::Dahlia => ApiShape::Dahlia,
    };
    let secrets = args
        .secrets
        .as_deref()
        .context("set BILLHOOK_WEBHOOK_SECRETS (or --webhook-secrets) to the receiver's secret")?;
    let secrets = WebhookSecrets::parse(secrets).context("BILLHOOK_WEBHOOK_SECRETS")?;
    let receiver = Receiver::new(args.url.clone(), secrets, SEND_TIMEOUT)?;
    match story {
        Some(story) => tell(story, shape, &receiver, &args).await,
        None => {
            let event_type = args.event_type.as_deref().unwrap_or_default();
            send_one(event_type, shape, &receiver, &args).await
        }
    }
}

/// One line per story: its name and what happens in it.
fn stories_list() -> String {
    Story::ALL
        .iter()
        .map(|s| format!("{:<31} {}\n", s.name(), s.summary()))
        .collect()
}

/// One example of `event_type`, with ids of its own and dates around now, after the customer
/// it belongs to. When the worker's database is at hand, the example waits until the worker
/// has applied the customer (for five seconds at most), so that its emails find their address.
async fn send_one(
    event_type: &str,
    shape: ApiShape,
    receiver: &Receiver,
    args: &Args,
) -> anyhow::Result<()> {
    let cast = Cast::fresh();
    let Some(events) = examples::single(event_type, shape, &cast, fixtures::unix_now()) else {
        bail!("no built-in example for `{event_type}`; --list shows the types there are");
    };
    let db = if events.len() > 1 {
        database(args, Duration::from_secs(2)).await.ok()
    } else {
        None
    };
    let last = events.len() - 1;
    for (n, event) in events.iter().enumerate() {
        let sent = receiver.send(event).await?;
        println!(
            "{} {} ({}) -> {}",
            sent.event_type,
            sent.id,
            event["data"]["object"]["id"].as_str().unwrap_or("?"),
            sent.answer
        );
        if let (Some(db), true) = (&db, n < last) {
            let limit = Duration::from_secs(5);
            if trigger::wait::until_applied(&db.pool, &[sent.id], limit)
                .await
                .is_err()
            {
                println!(
                    "  (not applied within 5 s: is the worker running? sending the next anyway)"
                );
            }
        }
    }
    Ok(())
}

/// The worker's database: DATABASE_URL, else the URL scripts/dev.sh keeps in .dev/database-url.
async fn database(args: &Args, timeout: Duration) -> anyhow::Result<Database> {
    let (url, url_file) = match &args.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let file = checkout().join(".dev").join("database-url");
            let url = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "a story reads the worker's database: set DATABASE_URL, or start scripts/dev.sh \
                     (it writes {})",
                    file.display()
                )
            })?;
            (url.trim().to_owned(), Some(file))
        }
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(timeout)
        .connect(&url)
        .await
        .context("cannot connect to the worker's database (DATABASE_URL or .dev/database-url)")?;
    Ok(Database { pool, url_file })
}

async fn tell(
    story: Story,
    shape: ApiShape,
    receiver: &Receiver,
    args: &Args,
) -> anyhow::Result<()> {
    let db = database(args, Duration::from_secs(10)).await?;
    let email_dir = args
        .email_dir
        .clone()
        .or_else(|| Some(checkout().join(".dev").join("mail")).filter(|d| d.is_dir()));
    let how = Telling {
        shape,
        wait: Duration::from_secs(args.wait),
        email_dir,
        worker_command: worker_command(),
    };
    trigger::tell(story, receiver, &db, &how).await
}

/// How to run `billhook-worker` from here: the binary scripts/dev.sh built, if there is one.
fn worker_command() -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| checkout().join("target"));
    let built = target.join("debug").join("billhook-worker");
    if !built.is_file() {
        return "billhook-worker".to_owned();
    }
    let built = built.canonicalize().unwrap_or(built);
    std::env::current_dir()
        .ok()
        .and_then(|cwd| built.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or(built)
        .display()
        .to_string()
}
