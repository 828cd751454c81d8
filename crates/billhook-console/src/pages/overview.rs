//! `/`: the overview, with the chart of events per minute (uPlot, from the JSON the page
//! carries; per-hour figures in a table without JavaScript). Refreshes itself every 30 s.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{Chrome, PageError, filters, page};
use crate::State;
use crate::query::overview::{self, Overview};
use crate::session::Session;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    o: Overview,
    /// The chart's series as JSON (numbers only).
    chart: String,
}

impl OverviewPage {
    fn count(&self, counts: &[overview::Count], name: &str) -> i64 {
        Overview::count(counts, name)
    }

    fn seconds(value: &Option<f64>) -> String {
        value.map_or_else(|| "—".to_owned(), |s| format!("{s:.2} s"))
    }

    fn dead_total(&self) -> i64 {
        self.o.dead_letters.iter().map(|c| c.count).sum()
    }
}

pub async fn show(session: Session, state: web::Data<State>) -> Result<HttpResponse, PageError> {
    let o = overview::overview(&state.pool).await?;
    let chart = serde_json::to_string(&o.per_minute).unwrap_or_else(|_| "{}".to_owned());
    page(&OverviewPage {
        chrome: Chrome::new(&session, "overview"),
        o,
        chart,
    })
}
