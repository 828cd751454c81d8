//! `billhook-worker orders …` and `ledger …` as the host application and an operator run them.

use std::process::{Command, Output};

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::ApiShape;
use billhook_testkit::scenarios::{CUSTOMER, ORDER_REFERENCE, SESSION, Scenario};
use serde_json::json;

fn worker(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_billhook-worker"))
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("BILLHOOK_LOG_FORMAT", "text")
        .args(args)
        .output()
        .expect("run billhook-worker")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn an_order_created_on_the_command_line_is_paid_by_its_checkout() {
    let db = TestDatabase::new().await;
    let created = worker(
        &db,
        &[
            "orders",
            "create",
            "--reference",
            ORDER_REFERENCE,
            "--checkout-ref",
            SESSION,
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let id = stdout(&created).trim().to_owned();
    assert!(id.starts_with("ord_"), "{id}");

    let again = worker(&db, &["orders", "create", "--reference", ORDER_REFERENCE]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(db.count("orders").await, 1);

    let applier = Applier::new(&db.pool, billing::context());
    for event in Scenario::CheckoutPaidThenRefunded
        .events(ApiShape::Dahlia)
        .iter()
        .take(3)
    {
        applier.deliver(event).await.expect("applies");
    }
    let shown = worker(&db, &["orders", "show", ORDER_REFERENCE]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let order: serde_json::Value = serde_json::from_str(&stdout(&shown)).expect("JSON");
    assert_eq!(order["id"], json!(id));
    assert_eq!(order["status"], "paid");
    assert_eq!(order["created_by"], "application");
}

#[tokio::test]
async fn a_manual_ledger_entry_records_who_and_why_and_moves_the_balance() {
    let db = TestDatabase::new().await;
    let adjusted = worker(
        &db,
        &[
            "ledger",
            "adjust",
            "--customer",
            CUSTOMER,
            "--amount",
            "-250",
            "--unit",
            "USD",
            "--reason",
            "goodwill correction",
            "--by",
            "ana",
        ],
    );
    assert!(adjusted.status.success(), "{}", stderr(&adjusted));
    assert!(
        stdout(&adjusted).contains(&format!("{CUSTOMER} -250 usd")),
        "{}",
        stdout(&adjusted)
    );
    assert_eq!(
        billing::rows(
            &db.pool,
            "SELECT customer_id, kind, amount, unit, reason, created_by FROM ledger_entries"
        )
        .await,
        json!([{ "customer_id": CUSTOMER, "kind": "manual", "amount": -250, "unit": "usd",
                 "reason": "goodwill correction", "created_by": "ana" }])
    );
    assert_eq!(
        billing::rows(
            &db.pool,
            "SELECT entity, entity_id, action, actor, event_id FROM audit_log"
        )
        .await,
        json!([{ "entity": "ledger", "entity_id": CUSTOMER, "action": "manual_entry", "actor": "ana",
                 "event_id": null }])
    );

    for refused in [
        vec![
            "ledger",
            "adjust",
            "--customer",
            CUSTOMER,
            "--amount",
            "0",
            "--unit",
            "usd",
            "--reason",
            "x",
        ],
        vec![
            "ledger",
            "adjust",
            "--customer",
            CUSTOMER,
            "--amount",
            "5",
            "--unit",
            "usd",
        ],
    ] {
        let output = worker(&db, &refused);
        assert!(!output.status.success(), "{refused:?} is refused");
    }
    assert_eq!(db.count("ledger_entries").await, 1);

    let balance = worker(&db, &["ledger", "balance", "--customer", CUSTOMER]);
    assert_eq!(stdout(&balance).trim(), format!("{CUSTOMER} -250 usd"));
}

#[tokio::test]
async fn dunning_runs_are_listed_and_shown_with_their_emails() {
    let db = TestDatabase::new().await;
    sqlx::raw_sql(
        "INSERT INTO dunning_runs (id, invoice_id, subscription_id, customer_id, started_at, next_step_at, event_id, steps_done)
         VALUES ('dun_1', 'in_1', 'sub_1', 'cus_1', now(), now() + interval '3 days', 'evt_1', 1),
                ('dun_2', 'in_2', 'sub_2', 'cus_2', now(), NULL, 'evt_2', 4);
         UPDATE dunning_runs SET state = 'canceled' WHERE id = 'dun_2';
         INSERT INTO emails (id, template, source, recipient, data, status)
         VALUES ('eml_1', 'payment_failed', 'dun_1:0', 'jenny@example.com', '{}', 'sent'),
                ('eml_2', 'payment_failed', 'dun_10:0', 'other@example.com', '{}', 'sent');",
    )
    .execute(&db.pool)
    .await
    .expect("runs");

    let active = stdout(&worker(&db, &["dunning", "list"]));
    assert!(
        active.contains("dun_1") && !active.contains("dun_2"),
        "{active}"
    );
    assert!(active.contains("1 run(s)"), "{active}");
    let all = stdout(&worker(&db, &["dunning", "list", "--all"]));
    assert!(all.contains("dun_2") && all.contains("2 run(s)"), "{all}");

    let shown = worker(&db, &["dunning", "show", "in_1"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let run: serde_json::Value = serde_json::from_str(&stdout(&shown)).expect("JSON");
    assert_eq!(run["id"], "dun_1");
    assert_eq!(run["steps_done"], 1);
    assert_eq!(run["emails"].as_array().map(Vec::len), Some(1), "{run}");
    assert!(!worker(&db, &["dunning", "show", "in_9"]).status.success());
}

/// `ledger adjust` with `amount` and `key`, by ana.
fn adjust_with_key(db: &TestDatabase, amount: &str, key: &str) -> Output {
    worker(
        db,
        &[
            "ledger",
            "adjust",
            "--customer",
            CUSTOMER,
            "--amount",
            amount,
            "--unit",
            "usd",
            "--reason",
            "ticket 42",
            "--by",
            "ana",
            "--key",
            key,
        ],
    )
}

#[tokio::test]
async fn an_adjustment_with_a_key_is_added_once() {
    let db = TestDatabase::new().await;

    let first = adjust_with_key(&db, "500", "ticket-42");
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("added ledger entry"),
        "{}",
        stdout(&first)
    );

    // A retried script: the same adjustment again changes nothing.
    let again = adjust_with_key(&db, "500", "ticket-42");
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing changed"),
        "{}",
        stdout(&again)
    );
    assert!(stdout(&again).contains(&format!("{CUSTOMER} 500 usd")));

    // The same key for a different adjustment is refused, and changes nothing either.
    let other = adjust_with_key(&db, "600", "ticket-42");
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("was used for a different adjustment"),
        "{}",
        stderr(&other)
    );
    let empty = adjust_with_key(&db, "500", " ");
    assert!(!empty.status.success(), "an empty key is refused");

    assert_eq!(db.count("ledger_entries").await, 1);
    assert_eq!(db.count("audit_log").await, 1);
    let second = adjust_with_key(&db, "500", "ticket-43");
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(db.count("ledger_entries").await, 2, "another key adds");
}
