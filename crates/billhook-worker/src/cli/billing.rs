//! `billhook-worker ledger …` and `billhook-worker orders …`: the operator's and the host
//! application's ways into the ledger and the orders, besides SQL.

use anyhow::Context as _;
use sqlx::PgPool;

use crate::billing::ledger;

#[derive(clap::Subcommand, Debug)]
pub enum LedgerCommand {
    /// Add a manual entry (positive credits, negative debits), recorded with who and why.
    Adjust {
        /// The ledger account: a Stripe customer id (or `email:ADDRESS` for guest checkouts).
        #[arg(long)]
        customer: String,
        /// Whole ledger units: minor currency units or points, as the ledger rule counts them.
        #[arg(long, allow_negative_numbers = true)]
        amount: i64,
        /// The unit of the account's entries: a currency code (usd) or `points`.
        #[arg(long)]
        unit: String,
        /// Why, stored on the entry and in the audit log.
        #[arg(long)]
        reason: String,
        /// Who (default: $USER).
        #[arg(long, env = "USER")]
        by: Option<String>,
        /// Makes the adjustment happen once: run again with the same key, it changes nothing.
        /// Scripts that may retry should pass one (a ticket number, say).
        #[arg(long)]
        key: Option<String>,
    },
    /// Balances, one line per account and unit (--customer: one account).
    Balance {
        #[arg(long)]
        customer: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum OrdersCommand {
    /// Create a pending order before sending the customer to Checkout (or confirming a
    /// PaymentIntent), so the payment's events find it. Prints the order id.
    Create {
        /// The application's own order id; Checkout's client_reference_id or metadata.order_id.
        #[arg(long)]
        reference: String,
        /// The Checkout Session (cs_…) or PaymentIntent (pi_…) id, if known already.
        #[arg(long = "checkout-ref")]
        checkout_ref: Option<String>,
        /// Amount in minor units (cents).
        #[arg(long)]
        amount: Option<i64>,
        #[arg(long)]
        currency: Option<String>,
    },
    /// One order as JSON, by its reference (or id).
    Show { reference: String },
    /// Say the application delivered a paid order (`fulfilled`) or could not
    /// (`fulfillment_failed`); recorded in the audit log with who.
    Mark {
        /// The order's reference (or id).
        reference: String,
        #[arg(long, value_parser = ["fulfilled", "fulfillment_failed"])]
        status: String,
        /// Why, kept in the audit entry.
        #[arg(long)]
        reason: Option<String>,
        /// Who (default: $USER).
        #[arg(long, env = "USER")]
        by: Option<String>,
    },
}

pub async fn ledger(pool: &PgPool, command: LedgerCommand) -> anyhow::Result<()> {
    match command {
        LedgerCommand::Adjust {
            customer,
            amount,
            unit,
            reason,
            by,
            key,
        } => {
            anyhow::ensure!(amount != 0, "--amount must not be 0");
            anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
            let by = by.unwrap_or_else(|| "unknown".to_owned());
            anyhow::ensure!(
                key.as_deref().is_none_or(|k| !k.trim().is_empty()),
                "--key must not be empty"
            );
            let mut tx = pool.begin().await?;
            let adjusted = ledger::adjust(
                &mut tx,
                &customer,
                amount,
                &unit.to_ascii_lowercase(),
                &reason,
                &by,
                key.as_deref(),
            )
            .await
            .context("the entry was not added")?;
            tx.commit().await?;
            match adjusted {
                ledger::Adjusted::Added(id) => {
                    println!("added ledger entry {id}: {amount} {unit} for {customer} ({reason})");
                }
                ledger::Adjusted::AlreadyAdded(id) => {
                    println!("ledger entry {id} was added with this key before; nothing changed");
                }
            }
            print_balances(pool, Some(&customer)).await
        }
        LedgerCommand::Balance { customer } => print_balances(pool, customer.as_deref()).await,
    }
}

async fn print_balances(pool: &PgPool, customer: Option<&str>) -> anyhow::Result<()> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT customer_id, unit, balance::bigint FROM ledger_balances
          WHERE $1::text IS NULL OR customer_id = $1 ORDER BY customer_id, unit",
    )
    .bind(customer)
    .fetch_all(pool)
    .await?;
    for (customer, unit, balance) in &rows {
        println!("{customer} {balance} {unit}");
    }
    if rows.is_empty() {
        println!("no ledger entries");
    }
    Ok(())
}

pub async fn orders(pool: &PgPool, command: OrdersCommand) -> anyhow::Result<()> {
    match command {
        OrdersCommand::Create {
            reference,
            checkout_ref,
            amount,
            currency,
        } => {
            let id: String = sqlx::query_scalar(
                "INSERT INTO orders (reference, checkout_ref, amount, currency)
                 VALUES ($1, $2, $3, lower($4)) RETURNING id",
            )
            .bind(&reference)
            .bind(&checkout_ref)
            .bind(amount)
            .bind(&currency)
            .fetch_one(pool)
            .await
            .map_err(
                |e| match e.as_database_error().and_then(|d| d.constraint()) {
                    Some(constraint) => anyhow::anyhow!(
                        "an order with this {} exists already; nothing was created",
                        if constraint.contains("checkout") {
                            "--checkout-ref"
                        } else {
                            "--reference"
                        }
                    ),
                    None => anyhow::Error::new(e).context("the order was not created"),
                },
            )?;
            println!("{id}");
            Ok(())
        }
        OrdersCommand::Show { reference } => {
            let order: Option<serde_json::Value> = sqlx::query_scalar(
                "SELECT to_jsonb(o) FROM orders o WHERE reference = $1 OR id = $1",
            )
            .bind(&reference)
            .fetch_optional(pool)
            .await?;
            let order = order.with_context(|| format!("no order {reference}"))?;
            println!("{}", serde_json::to_string_pretty(&order)?);
            Ok(())
        }
        OrdersCommand::Mark {
            reference,
            status,
            reason,
            by,
        } => {
            let by = by.unwrap_or_else(|| "unknown".to_owned());
            let request = billhook_console::MarkOrder { status, reason };
            match crate::billing::fulfilment::mark(pool, &reference, &request, &by).await {
                Ok(done) if done.changed => {
                    println!(
                        "order {} marked {} (was {})",
                        done.id, done.status, done.from
                    );
                    Ok(())
                }
                Ok(done) => {
                    println!(
                        "order {} is {} already; nothing changed",
                        done.id, done.status
                    );
                    Ok(())
                }
                Err(billhook_console::MarkError::NotFound) => {
                    anyhow::bail!("no order {reference}")
                }
                Err(e) => Err(anyhow::Error::new(e).context("the order was not marked")),
            }
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum DunningCommand {
    /// One line per active run (--all: every run).
    List {
        #[arg(long)]
        all: bool,
    },
    /// One run (by its id or its invoice id) with its history and emails, as JSON.
    Show { run: String },
}

#[derive(sqlx::FromRow)]
struct RunLine {
    id: String,
    invoice_id: String,
    subscription_id: String,
    state: String,
    steps_done: i32,
    next_step_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn dunning(pool: &PgPool, command: DunningCommand) -> anyhow::Result<()> {
    match command {
        DunningCommand::List { all } => {
            let runs: Vec<RunLine> =
                sqlx::query_as(
                    "SELECT id, invoice_id, subscription_id, state, steps_done, next_step_at FROM dunning_runs
                      WHERE $1 OR state = 'active' ORDER BY started_at",
                )
                .bind(all)
                .fetch_all(pool)
                .await?;
            println!(
                "{:<30} {:<28} {:<28} {:<10} {:>5}  next step",
                "run", "invoice", "subscription", "state", "steps"
            );
            for RunLine {
                id,
                invoice_id: invoice,
                subscription_id: subscription,
                state,
                steps_done: steps,
                next_step_at: next,
            } in &runs
            {
                let next = next.map_or("-".to_owned(), |t| {
                    t.format("%Y-%m-%d %H:%M:%S").to_string()
                });
                println!(
                    "{id:<30} {invoice:<28} {subscription:<28} {state:<10} {steps:>5}  {next}"
                );
            }
            println!("{} run(s)", runs.len());
            Ok(())
        }
        DunningCommand::Show { run } => {
            let shown: Option<serde_json::Value> = sqlx::query_scalar(
                "SELECT to_jsonb(r) || jsonb_build_object('emails', coalesce((
                          SELECT jsonb_agg(jsonb_build_object('template', e.template, 'status', e.status,
                                   'recipient', e.recipient, 'sent_at', e.sent_at) ORDER BY e.created_at)
                            FROM emails e WHERE left(e.source, length(r.id) + 1) = r.id || ':'), '[]'::jsonb))
                   FROM dunning_runs r WHERE r.id = $1 OR r.invoice_id = $1",
            )
            .bind(&run)
            .fetch_optional(pool)
            .await?;
            let shown = shown.with_context(|| format!("no dunning run {run}"))?;
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
    }
}
