//! The console's record areas over real stories (a one-time purchase, a subscription whose
//! renewal fails): customers with their mirror, entitlements and balance; orders by id and by
//! reference, marked fulfilled through the API, the pages and the command line; dunning runs,
//! emails, notices; the overview's figures against SQL. Every endpoint answers 401 without a
//! token; each filter narrows to exactly what it should.

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::objects::Cast;
use billhook_testkit::stories::{Story, Then};
use billhook_testkit::trigger;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::{Console, OPERATE, Pages, READ, ids};

/// A purchase (cast `buyer`, with the application's order) and a subscription whose renewal
/// failed (cast `subscriber`: an active dunning run), applied through the worker's code.
struct Shop {
    db: TestDatabase,
    buyer: Cast,
    subscriber: Cast,
    /// An order the application created that was never paid.
    pending_order: String,
}

async fn shop() -> Shop {
    let db = TestDatabase::new().await;
    let (buyer, subscriber) = tell_stories(&db.pool).await;
    let pending_order: String = sqlx::query_scalar(
        "INSERT INTO orders (reference, amount, currency) VALUES ('never-paid-1', 100, 'usd') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("an order");
    Shop {
        db,
        buyer,
        subscriber,
        pending_order,
    }
}

/// A one-time purchase (with the application's order) and a subscription whose renewal failed,
/// applied on `pool` through the worker's code: the buyer's and the subscriber's casts.
pub(super) async fn tell_stories(pool: &sqlx::PgPool) -> (Cast, Cast) {
    let buyer = Cast::with_suffix("console01");
    let subscriber = Cast::with_suffix("console02");
    trigger::create_order(pool, &buyer)
        .await
        .expect("the order");
    let applier = Applier::new(pool, billing::context());
    let now = fixtures::unix_now();
    let mut events = Vec::new();
    for chapter in Story::OneTimePurchase.chapters(ApiShape::Dahlia, &buyer, now) {
        events.extend(chapter.events);
    }
    for chapter in Story::RenewalFailsThenRecovers.chapters(ApiShape::Dahlia, &subscriber, now) {
        let stop = chapter.then == Then::FirstDunningStep;
        events.extend(chapter.events);
        if stop {
            break;
        }
    }
    for event in &events {
        let status = applier.deliver(event).await.expect("applies");
        assert_eq!(status, "applied", "{}", event["type"]);
    }
    (buyer, subscriber)
}

async fn ok(console: &Console, path: &str) -> Value {
    let (status, _) = console.get(path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without a token");
    console.json(path).await
}

#[tokio::test]
async fn customers_show_their_mirror_entitlements_balance_orders_and_emails() {
    let shop = shop().await;
    let console = Console::start(&shop.db.pool).await;
    let (buyer, subscriber) = (&shop.buyer, &shop.subscriber);

    let all = ok(&console, "/customers").await;
    let mut listed = ids(&all, "customers", "id");
    listed.sort();
    assert_eq!(
        listed,
        [buyer.customer.clone(), subscriber.customer.clone()]
    );
    let by_email = ok(
        &console,
        &format!("/customers?email={}", buyer.email.to_uppercase()),
    )
    .await;
    assert_eq!(ids(&by_email, "customers", "id"), [buyer.customer.as_str()]);
    let first = ok(&console, "/customers?limit=1").await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = ok(&console, &format!("/customers?limit=1&cursor={cursor}")).await;
    let mut both = ids(&first, "customers", "id");
    both.extend(ids(&second, "customers", "id"));
    both.sort();
    assert_eq!(both, listed, "two pages hold each customer once");
    assert!(second["next_cursor"].is_null());

    assert!(
        ids(
            &ok(&console, "/customers?deleted=true").await,
            "customers",
            "id"
        )
        .is_empty(),
        "no deleted customer"
    );
    // The events about a customer: the customer itself, or an object that names it.
    let theirs = ok(
        &console,
        &format!("/events?customer={}&limit=200", buyer.customer),
    )
    .await;
    let about: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_events \
          WHERE convert_from(body, 'UTF8')::jsonb->'data'->'object' @> jsonb_build_object('customer', $1::text) \
             OR convert_from(body, 'UTF8')::jsonb->'data'->'object'->>'id' = $1",
    )
    .bind(&buyer.customer)
    .fetch_one(&shop.db.pool)
    .await
    .expect("count");
    assert!(about > 2, "{about}");
    assert_eq!(ids(&theirs, "events", "id").len() as i64, about);
    assert!(
        theirs["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["customer_id"] == buyer.customer.as_str())
    );
    let page = ok(&console, &format!("/customers/{}", buyer.customer)).await;
    assert_eq!(page["customer"]["email"], buyer.email.as_str());
    assert_eq!(
        ids(&page, "orders", "reference"),
        [buyer.order_reference.as_str()]
    );
    assert_eq!(page["balance"], json!([{ "unit": "usd", "balance": 5000 }]));
    assert!(
        !page["ledger_entries"]
            .as_array()
            .expect("entries")
            .is_empty()
    );
    assert!(
        page["emails"]
            .as_array()
            .expect("emails")
            .iter()
            .any(|e| e["template"] == "payment_receipt"),
        "{page}"
    );
    let text = page.to_string();
    assert!(
        !text.contains("fingerprint") && !text.contains("\"object\""),
        "{text}"
    );

    let sub = ok(&console, &format!("/customers/{}", subscriber.customer)).await;
    assert_eq!(
        ids(&sub, "subscriptions", "id"),
        [subscriber.subscription.as_str()]
    );
    assert_eq!(
        sub["subscriptions"][0]["items"][0]["price_id"],
        subscriber.price.as_str()
    );
    let invoices = ids(&sub, "invoices", "id");
    assert!(
        invoices.contains(&subscriber.renewal_invoice),
        "{invoices:?}"
    );
    let methods = sub["payment_methods"].as_array().expect("methods");
    for method in methods {
        let keys: Vec<&String> = method.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            ["brand", "exp_month", "exp_year", "id", "last4", "type"],
            "brand, last four and expiry only"
        );
    }

    let entitled = ok(
        &console,
        &format!("/customers/{}/entitlements", subscriber.customer),
    )
    .await;
    assert_eq!(
        entitled["entitlements"][0]["subscription_id"],
        subscriber.subscription.as_str()
    );
    let balance = ok(&console, &format!("/customers/{}/balance", buyer.customer)).await;
    assert_eq!(
        balance["balances"],
        json!([{ "unit": "usd", "balance": 5000 }])
    );
    for path in ["/customers/cus_nobody", "/customers/cus_nobody/balance"] {
        let (status, body) = console.get(path, Some(READ)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    console.stop().await;
}

#[tokio::test]
async fn orders_are_found_by_id_or_reference_and_marked_once_by_an_operator() {
    let shop = shop().await;
    let console = Console::start(&shop.db.pool).await;
    let reference = shop.buyer.order_reference.clone();

    let paid = ok(&console, "/orders?status=paid").await;
    assert_eq!(ids(&paid, "orders", "reference"), [reference.as_str()]);
    let pending = ok(&console, "/orders?status=pending").await;
    assert_eq!(ids(&pending, "orders", "id"), [shop.pending_order.as_str()]);
    let theirs = ok(
        &console,
        &format!("/orders?customer={}", shop.buyer.customer),
    )
    .await;
    assert_eq!(ids(&theirs, "orders", "reference"), [reference.as_str()]);
    let (status, body) = console.get("/orders?status=shipped", Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("fulfillment_failed"), "{body}");

    let by_reference = ok(&console, &format!("/orders/{reference}")).await;
    let id = by_reference["order"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let by_id = ok(&console, &format!("/orders/{id}")).await;
    assert_eq!(by_id, by_reference);
    assert!(
        !by_id["ledger_entries"]
            .as_array()
            .expect("entries")
            .is_empty()
    );

    let mark = |status: &str| json!({ "status": status, "reason": "shipped by courier" });
    let path = format!("/orders/{reference}/fulfillment");
    let (status, _) = console.post(&path, READ, mark("fulfilled")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(shop.db.count("orders WHERE status = 'fulfilled'").await, 0);
    let (status, done) = console.post(&path, OPERATE, mark("fulfilled")).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["changed"], true);
    assert_eq!(done["from"], "paid");
    let (_, again) = console.post(&path, OPERATE, mark("fulfilled")).await;
    assert_eq!(again["changed"], false, "marking twice changes nothing");
    assert_eq!(
        shop.db
            .count("audit_log WHERE entity = 'order' AND action = 'fulfilled' AND actor = 'ops' AND detail->>'reason' = 'shipped by courier'")
            .await,
        1
    );
    let (status, refused) = console
        .post(
            &format!("/orders/{}/fulfillment", shop.pending_order),
            OPERATE,
            mark("fulfilled"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("pending"))
    );
    let (status, _) = console
        .post(&path, OPERATE, json!({ "status": "lost" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = console
        .post("/orders/ord_nope/fulfillment", OPERATE, mark("fulfilled"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(shop.db.count("orders WHERE status = 'pending'").await, 1);

    // The command line runs the same code.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_billhook-worker"))
        .env_clear()
        .env("DATABASE_URL", &shop.db.url)
        .env("BILLHOOK_LOG_FORMAT", "text")
        .args([
            "orders",
            "mark",
            &reference,
            "--status",
            "fulfillment_failed",
        ])
        .args(["--reason", "box came back", "--by", "cli-user"])
        .output()
        .expect("billhook-worker runs");
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("marked fulfillment_failed (was fulfilled)")
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_billhook-worker"))
        .env_clear()
        .env("DATABASE_URL", &shop.db.url)
        .env("BILLHOOK_LOG_FORMAT", "text")
        .args([
            "orders",
            "mark",
            "never-paid-1",
            "--status",
            "fulfilled",
            "--by",
            "cli-user",
        ])
        .output()
        .expect("billhook-worker runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is pending"),
        "{output:?}"
    );
    let audit = ok(&console, &format!("/orders/{id}")).await["audit"].clone();
    let actors: Vec<&str> = audit
        .as_array()
        .expect("audit")
        .iter()
        .filter_map(|a| a["actor"].as_str())
        .collect();
    assert_eq!(actors, ["ops", "cli-user"]);
    console.stop().await;
}

#[tokio::test]
async fn dunning_runs_emails_and_notices_are_listed_filtered_and_shown() {
    let shop = shop().await;
    let console = Console::start(&shop.db.pool).await;
    let subscriber = &shop.subscriber;

    let active = ok(&console, "/dunning-runs?state=active").await;
    let runs = ids(&active, "dunning_runs", "id");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        active["dunning_runs"][0]["invoice_id"],
        subscriber.renewal_invoice.as_str()
    );
    let theirs = ok(
        &console,
        &format!("/dunning-runs?customer={}", shop.buyer.customer),
    )
    .await;
    assert!(ids(&theirs, "dunning_runs", "id").is_empty());
    let run = ok(&console, &format!("/dunning-runs/{}", runs[0])).await;
    assert_eq!(
        run["run"]["subscription_id"],
        subscriber.subscription.as_str()
    );
    assert_eq!(
        console.get("/dunning-runs?state=late", Some(READ)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        console.get("/dunning-runs/dun_nope", Some(READ)).await.0,
        StatusCode::NOT_FOUND
    );

    let all = ok(&console, "/emails").await;
    let expected: i64 = shop.db.count("emails").await;
    assert_eq!(ids(&all, "emails", "id").len() as i64, expected);
    let to_buyer = ok(&console, &format!("/emails?recipient={}", shop.buyer.email)).await;
    let recipients: Vec<String> = ids(&to_buyer, "emails", "recipient");
    assert!(!recipients.is_empty() && recipients.iter().all(|r| *r == shop.buyer.email));
    let receipts = ok(&console, "/emails?template=payment_receipt").await;
    assert!(
        receipts["emails"]
            .as_array()
            .expect("emails")
            .iter()
            .all(|e| e["template"] == "payment_receipt")
    );
    let pending = ok(&console, "/emails?status=pending").await;
    let pending_count = shop.db.count("emails WHERE status = 'pending'").await;
    assert_eq!(ids(&pending, "emails", "id").len() as i64, pending_count);
    let first = &ids(&all, "emails", "id")[0];
    let email = ok(&console, &format!("/emails/{first}")).await;
    assert_eq!(email["email"]["id"], first.as_str());
    assert!(email["dead_letter"].is_null());
    assert_eq!(
        console.get("/emails?status=lost", Some(READ)).await.0,
        StatusCode::BAD_REQUEST
    );

    // A notice, as the worker records them.
    sqlx::query(
        "INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status) \
         VALUES ('ntf_console1', 'subscription.past_due', 'k1', 'evt_x', \
                 '{\"type\": \"subscription.past_due\", \"data\": {\"customer\": \"cus_console02\"}}', 'pending')",
    )
    .execute(&shop.db.pool)
    .await
    .expect("a notice");
    let notices = ok(&console, "/notices?type=subscription.past_due").await;
    assert_eq!(ids(&notices, "notices", "id"), ["ntf_console1"]);
    let none = ok(&console, "/notices?status=delivered").await;
    assert!(ids(&none, "notices", "id").is_empty());
    let notice = ok(&console, "/notices/ntf_console1").await;
    assert_eq!(
        notice["notice"]["body"]["data"]["customer"],
        "cus_console02"
    );
    // The customer's page lists the notices about it: this one and those the worker recorded.
    let customer = ok(&console, &format!("/customers/{}", subscriber.customer)).await;
    let theirs = ids(&customer, "notices", "id");
    assert!(theirs.contains(&"ntf_console1".to_owned()), "{theirs:?}");
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM app_notifications WHERE body->'data'->>'customer' = $1",
    )
    .bind(&subscriber.customer)
    .fetch_one(&shop.db.pool)
    .await
    .expect("count");
    assert_eq!(theirs.len() as i64, recorded);
    assert!(recorded > 1);
    console.stop().await;
}

#[tokio::test]
async fn the_overview_agrees_with_the_database() {
    let shop = shop().await;
    sqlx::query(
        "INSERT INTO reconcile_runs (trigger, since, until, outcome, events_recovered) \
         VALUES ('schedule', now() - interval '1 hour', now(), 'succeeded', 3)",
    )
    .execute(&shop.db.pool)
    .await
    .expect("a reconcile run");
    sqlx::query(
        "INSERT INTO rejected_deliveries (minute, reason, count) VALUES \
           (date_trunc('minute', now()), 'mismatch', 7), \
           (date_trunc('minute', now()) - interval '1 hour', 'mismatch', 2), \
           (date_trunc('minute', now()), 'outside_tolerance', 1), \
           (now() - interval '2 days', 'mismatch', 100)",
    )
    .execute(&shop.db.pool)
    .await
    .expect("rejections");
    let console = Console::start(&shop.db.pool).await;
    let overview = ok(&console, "/overview").await;
    assert_eq!(
        overview["rejected_24h"],
        json!([{ "name": "mismatch", "count": 9 }, { "name": "outside_tolerance", "count": 1 }]),
        "the last 24 hours only"
    );

    let received: i64 = shop
        .db
        .count("webhook_events WHERE received_at >= now() - interval '24 hours'")
        .await;
    let charted: i64 = overview["per_minute"]["received"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(charted, received);
    assert!(received > 5);
    let minutes = overview["per_minute"]["minutes"]
        .as_array()
        .expect("minutes")
        .len();
    assert!((1440..=1442).contains(&minutes), "{minutes}");
    let applied: i64 = overview["per_minute"]["applied"]
        .as_array()
        .expect("series")
        .iter()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(
        applied,
        shop.db
            .count("webhook_events WHERE applied_at IS NOT NULL")
            .await
    );
    let outcome = |name: &str| {
        overview["outcomes_24h"]
            .as_array()
            .expect("outcomes")
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["count"].as_i64())
            .unwrap_or(0)
    };
    assert_eq!(
        outcome("applied"),
        shop.db
            .count("webhook_events WHERE status = 'applied'")
            .await
    );
    assert_eq!(overview["dunning_active"], 1);
    assert_eq!(
        overview["emails"],
        billing::rows(
            &shop.db.pool,
            "SELECT status AS name, count(*) AS count FROM emails WHERE status IN ('pending', 'dead') GROUP BY 1 ORDER BY 1"
        )
        .await
    );
    assert!(overview["last_event_at"].is_string());
    assert_eq!(overview["reconcile_last_run"]["events_recovered"], 3);
    assert!(overview["lag_p50_seconds"].is_number());

    let mut pages = Pages::new(console.port);
    pages.login(READ).await;
    let page = pages.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"chart-data\""));
    assert!(page.body.contains("id=\"dead-total\""));
    console.stop().await;
}

#[tokio::test]
async fn every_record_page_renders_and_an_order_is_marked_from_its_page() {
    let shop = shop().await;
    let console = Console::start(&shop.db.pool).await;
    let mut pages = Pages::new(console.port);
    let run: String = sqlx::query_scalar("SELECT id FROM dunning_runs")
        .fetch_one(&shop.db.pool)
        .await
        .expect("a run");
    let email: String = sqlx::query_scalar("SELECT id FROM emails LIMIT 1")
        .fetch_one(&shop.db.pool)
        .await
        .expect("an email");
    let reference = shop.buyer.order_reference.clone();
    let away = pages.get("/customers").await;
    assert_eq!(away.status, StatusCode::SEE_OTHER, "pages need a login");
    pages.login(READ).await;
    for (path, shows) in [
        ("/".to_owned(), "Events per minute".to_owned()),
        ("/customers".to_owned(), shop.buyer.customer.clone()),
        (
            format!("/customers?email={}", shop.buyer.email),
            shop.buyer.customer.clone(),
        ),
        (
            format!("/customers/{}", shop.subscriber.customer),
            shop.subscriber.subscription.clone(),
        ),
        ("/orders?status=paid".to_owned(), reference.clone()),
        (format!("/orders/{reference}"), shop.buyer.session.clone()),
        ("/dunning-runs".to_owned(), run.clone()),
        (
            format!("/dunning-runs/{run}"),
            shop.subscriber.renewal_invoice.clone(),
        ),
        ("/emails".to_owned(), email.clone()),
        (format!("/emails/{email}"), email.clone()),
        ("/notices".to_owned(), "subscription.".to_owned()),
        (
            "/notices?status=delivered".to_owned(),
            "Nothing matches".to_owned(),
        ),
    ] {
        let page = pages.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.body.contains(&shows), "{path} shows {shows}");
    }
    let filtered = pages.get("/orders?status=pending").await.body;
    assert!(filtered.contains("never-paid-1") && !filtered.contains(&reference));
    let page = pages.get(&format!("/orders/{reference}")).await.body;
    assert!(
        !page.contains("mark-fulfilled"),
        "a read session cannot mark"
    );

    let mut operator = Pages::new(console.port);
    operator.login(OPERATE).await;
    let path = format!("/orders/{reference}");
    let page = operator.get(&path).await.body;
    assert!(page.contains("id=\"mark-fulfilled\""));
    let csrf = operator.csrf(&path).await;
    let id: String = sqlx::query_scalar("SELECT id FROM orders WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&shop.db.pool)
        .await
        .expect("the order");
    let refused = operator
        .post(
            &format!("/orders/{id}/fulfillment"),
            &[("csrf", "forged"), ("status", "fulfilled")],
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let marked = operator
        .post(
            &format!("/orders/{id}/fulfillment"),
            &[("csrf", &csrf), ("status", "fulfilled"), ("reason", "")],
            &[],
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK);
    assert!(
        marked.body.contains("Marked fulfilled (was paid)"),
        "{}",
        marked.body
    );
    assert_eq!(shop.db.count("orders WHERE status = 'fulfilled'").await, 1);
    console.stop().await;
}
