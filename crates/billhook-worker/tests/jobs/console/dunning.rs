//! The console's dunning runs: a run the worker took to its end (emails, cancellation through
//! a Stripe stand-in) shown with its steps, its emails and its audit entries; the list's
//! filters and keyset pages over runs written directly.

use std::time::Duration;

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::scenarios::{RENEWAL_INVOICE, SUBSCRIPTION, Scenario};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_testkit::worker::{run_jobs_due_within, settings};
use billhook_testkit::{TestDatabase, TestWorker, billing};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use super::harness::{Console, READ, ids};

/// Every id that the pages of `path` (which has no `?` yet, or ends in a filter) hold, two at
/// a time, in order; asserts that the last page says there is no further one.
pub(super) async fn every_page(console: &Console, path: &str, key: &str) -> Vec<String> {
    let join = if path.contains('?') { '&' } else { '?' };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page_path = match &cursor {
            Some(c) => format!("{path}{join}limit=2&cursor={c}"),
            None => format!("{path}{join}limit=2"),
        };
        let page = console.json(&page_path).await;
        let found = ids(&page, key, "id");
        assert!(found.len() <= 2, "{page_path}: {page}");
        seen.extend(found);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return seen,
        }
    }
    panic!("{path}: more than 100 pages");
}

/// Asserts that `path` answers 401 without a token and returns its answer to the read token.
pub(super) async fn read(console: &Console, path: &str) -> Value {
    let (status, body) = console.get(path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    console.json(path).await
}

/// The worker runs a renewal that never recovers to its end (steps due at 0, 2, 4 and 6 s):
/// three emails, then the cancellation in Stripe and its email. Returns the run's id.
async fn a_cancelled_run(db: &TestDatabase) -> String {
    let stripe = StripeStandIn::start().await;
    let mut events = Scenario::RenewalNeverRecovers.events(ApiShape::Dahlia);
    let now = fixtures::unix_now();
    for (n, event) in events.iter_mut().enumerate() {
        event["created"] = (now - 3 + n as i64).into();
    }
    stripe.put(
        &format!("/v1/invoices/{RENEWAL_INVOICE}"),
        events[3]["data"]["object"].clone(),
    );
    stripe.put(
        &format!("/v1/subscriptions/{SUBSCRIPTION}"),
        events[4]["data"]["object"].clone(),
    );
    let mut settings = settings();
    settings.dunning.schedule = "0s,2s,4s,6s".parse().expect("schedule");
    settings.billing.stripe_api_key = Some(SecretString::from("sk_test_console"));
    settings.billing.stripe_api_base = stripe.base.parse().expect("URL");
    let worker = TestWorker::spawn_with(&db.pool, settings).await;
    // Customer, subscription, first invoice paid, the renewal's failure, past_due.
    for event in &events[..=4] {
        billing::store(&db.pool, event).await;
    }
    run_jobs_due_within(&db.pool, Duration::from_secs(10), Duration::from_secs(40)).await;
    worker.stop().await.expect("clean stop");
    assert_eq!(db.count("dunning_runs WHERE state = 'canceled'").await, 1);
    sqlx::query_scalar("SELECT id FROM dunning_runs")
        .fetch_one(&db.pool)
        .await
        .expect("the run")
}

fn strings(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_run_shows_its_steps_every_email_it_sent_and_its_audit_entries() {
    let db = TestDatabase::new().await;
    let run = a_cancelled_run(&db).await;
    let console = Console::start(&db.pool).await;

    let shown = read(&console, &format!("/dunning-runs/{run}")).await;
    assert_eq!(shown["run"]["id"], run.as_str());
    assert_eq!(shown["run"]["state"], "canceled");
    assert_eq!(shown["run"]["invoice_id"], RENEWAL_INVOICE);
    assert_eq!(shown["run"]["subscription_id"], SUBSCRIPTION);
    assert_eq!(shown["run"]["steps_done"], 4);
    assert_eq!(
        strings(&shown["steps"], "action"),
        ["payment_failed", "reminder", "final_warning", "cancel"]
    );
    // The three step emails (source `<run>:<step>`) and the cancellation's (source: the
    // subscription); not the first invoice's receipt, which is the customer's but not the run's.
    assert_eq!(
        strings(&shown["emails"], "template"),
        [
            "payment_failed",
            "dunning_reminder",
            "final_warning",
            "subscription_cancelled"
        ],
        "{}",
        shown["emails"]
    );
    let run_emails: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM emails WHERE source LIKE $1 || ':%' OR source = $2",
    )
    .bind(&run)
    .bind(SUBSCRIPTION)
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(run_emails, 4);
    assert!(db.count("emails").await > 4, "the receipt is there too");
    let audit = &shown["audit"];
    assert_eq!(
        strings(audit, "action"),
        ["opened", "cancelled_by_dunning"],
        "{audit}"
    );
    assert_eq!(audit[0]["entity"], "dunning_run");
    assert_eq!(audit[1]["entity"], "subscription");
    assert_eq!(audit[1]["actor"], "dunning");

    let listed = read(&console, "/dunning-runs").await;
    assert_eq!(ids(&listed, "dunning_runs", "id"), [run.as_str()]);
    assert!(listed["next_cursor"].is_null());
    let (status, body) = console.get("/dunning-runs/dun_nope", Some(READ)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    console.stop().await;
}

/// Five runs written as the worker writes them: two started at the same instant (the keyset's
/// id breaks the tie).
async fn five_runs(db: &TestDatabase) {
    sqlx::query(
        "INSERT INTO dunning_runs (id, invoice_id, subscription_id, customer_id, state, started_at, event_id) \
         VALUES ('dun_a', 'in_a', 'sub_1', 'cus_1', 'active',    now() - interval '5 days', 'evt_a'), \
                ('dun_b', 'in_b', 'sub_1', 'cus_1', 'recovered', now() - interval '4 days', 'evt_b'), \
                ('dun_c', 'in_c', 'sub_2', 'cus_2', 'active',    now() - interval '3 days', 'evt_c'), \
                ('dun_d', 'in_d', 'sub_3', 'cus_2', 'canceled',  now() - interval '3 days', 'evt_d'), \
                ('dun_e', 'in_e', 'sub_4', 'cus_3', 'stopped',   now() - interval '1 day',  'evt_e')",
    )
    .execute(&db.pool)
    .await
    .expect("runs");
    sqlx::query("UPDATE dunning_runs SET started_at = (SELECT started_at FROM dunning_runs WHERE id = 'dun_c') WHERE id = 'dun_d'")
        .execute(&db.pool)
        .await
        .expect("a tie");
}

#[tokio::test]
async fn runs_are_filtered_by_state_customer_and_subscription_and_paged_newest_first() {
    let db = TestDatabase::new().await;
    five_runs(&db).await;
    let console = Console::start(&db.pool).await;

    let all = read(&console, "/dunning-runs").await;
    assert_eq!(
        ids(&all, "dunning_runs", "id"),
        ["dun_e", "dun_d", "dun_c", "dun_b", "dun_a"]
    );
    for (filter, expected) in [
        ("state=active", &["dun_c", "dun_a"][..]),
        ("state=canceled", &["dun_d"]),
        ("state=recovered", &["dun_b"]),
        ("customer=cus_2", &["dun_d", "dun_c"]),
        ("subscription=sub_1", &["dun_b", "dun_a"]),
        ("state=active&customer=cus_1", &["dun_a"]),
        ("customer=cus_nobody", &[]),
        (
            "state=&customer=",
            &["dun_e", "dun_d", "dun_c", "dun_b", "dun_a"],
        ),
    ] {
        let page = read(&console, &format!("/dunning-runs?{filter}")).await;
        assert_eq!(ids(&page, "dunning_runs", "id"), expected, "{filter}");
    }
    assert_eq!(
        every_page(&console, "/dunning-runs", "dunning_runs").await,
        ["dun_e", "dun_d", "dun_c", "dun_b", "dun_a"],
        "pages of two hold every run once, the tie included"
    );
    assert_eq!(
        every_page(&console, "/dunning-runs?customer=cus_2", "dunning_runs").await,
        ["dun_d", "dun_c"]
    );

    let (status, body) = console.get("/dunning-runs?state=late", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("active, recovered, canceled, stopped"),
        "{body}"
    );
    for bad in ["cursor=nonsense", "limit=0", "limit=201"] {
        let (status, body) = console
            .get(&format!("/dunning-runs?{bad}"), Some(READ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    console.stop().await;
}
