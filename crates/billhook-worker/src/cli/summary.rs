//! `billhook-worker summary --date YYYY-MM-DD [--print|--send]`: previews a day's summary (its
//! text part on stdout, and with --html-to the HTML and the chart as files), or sends it again
//! to BILLHOOK_SUMMARY_EMAIL.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::NaiveDate;
use sqlx::PgPool;

use crate::daemon::settings::RunSettings;
use crate::email::Mailer;
use crate::email::templates::{self, Template};
use crate::summary::figures::Day;
use crate::summary::{Summaries, report};

#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// The day (in BILLHOOK_SUMMARY_AT's time zone).
    #[arg(long)]
    pub date: NaiveDate,
    /// Print the summary (the default).
    #[arg(long, conflicts_with = "send")]
    pub print: bool,
    /// Send it (again) to BILLHOOK_SUMMARY_EMAIL.
    #[arg(long)]
    pub send: bool,
    /// With --print: also write summary.html and chart.png into this directory.
    #[arg(long, conflicts_with = "send")]
    pub html_to: Option<PathBuf>,
}

pub async fn run(pool: &PgPool, settings: &RunSettings, args: SummaryArgs) -> anyhow::Result<()> {
    let summaries = Summaries {
        pool: pool.clone(),
        settings: settings.summary.clone(),
        mailer: Mailer {
            max_attempts: settings.email.max_attempts,
            payment_failed_hold: settings.email.payment_failed_hold,
        },
        console_url: settings.alerts.console_url.clone(),
    };
    if args.send {
        anyhow::ensure!(
            !settings.summary.email.is_empty(),
            "BILLHOOK_SUMMARY_EMAIL is not set: there is nobody to send the summary to"
        );
        summaries.send(args.date, true).await?;
        println!(
            "the summary of {} is queued for {} (the worker sends it)",
            args.date,
            settings.summary.email.join(", ")
        );
        return Ok(());
    }
    let day = Day::new(args.date, settings.summary.at.zone);
    let data = report::build(pool, &day, settings.alerts.console_url.as_ref()).await?;
    let rendered = templates::render(
        Template::DailySummary,
        settings.email.templates.as_deref(),
        &data,
    )?;
    println!("Subject: {}\n\n{}", rendered.subject, rendered.text);
    if let Some(dir) = args.html_to {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let html = rendered.html.replace("cid:chart@billhook", "chart.png");
        std::fs::write(dir.join("summary.html"), html)?;
        for (_, png) in &rendered.images {
            std::fs::write(dir.join("chart.png"), png)?;
        }
        println!("wrote {}/summary.html and chart.png", dir.display());
    }
    Ok(())
}
