//! The first sync of an existing account (`billhook_worker::sync`) against the Stripe stand-in:
//! what it writes into the mirror for each type in both API shapes, what it never sets off,
//! and how its versions meet events. Paging, resuming and failures are in [`runs`].

mod runs;

use billhook_testkit::TestDatabase;
use billhook_testkit::billing::{self, Applier};
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::objects::{Builder, Cast, DAY};
use billhook_testkit::stripe_api::StripeStandIn;
use billhook_worker::billing::settings::BillingSettings;
use billhook_worker::stripe::StripeApi;
use billhook_worker::sync::{self, ObjectType, Progress, Request, Summary, SyncError};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const KEY: &str = "sk_test_sync_secret_key_51Hx";

/// A client of the stand-in with key [`KEY`], fast enough that tests do not wait for the rate.
pub fn api(stripe: &StripeStandIn) -> StripeApi {
    BillingSettings {
        stripe_api_key: Some(SecretString::from(KEY)),
        stripe_api_base: stripe.base.parse().expect("the stand-in's URL"),
        stripe_api_rate: 1_000,
        ..BillingSettings::default()
    }
    .stripe_api()
    .expect("a client")
    .expect("a key is set")
}

pub async fn run_sync(
    db: &TestDatabase,
    stripe: &StripeStandIn,
    types: &[ObjectType],
) -> Result<Summary, SyncError> {
    let request = Request::new(types.to_vec(), None, false);
    sync::sync(&db.pool, &api(stripe), &request, &Progress::log()).await
}

/// The object of a built event.
fn object(event: Value) -> Value {
    event["data"]["object"].clone()
}

/// One customer's account as Stripe lists it, in `shape`, started ten days ago: the customer,
/// a card, an active subscription and its paid first invoice, a one-time PaymentIntent whose
/// charge was refunded, and the Checkout Session that paid it.
fn add_account(stripe: &StripeStandIn, shape: ApiShape, cast: &Cast) {
    let b = Builder {
        shape,
        cast,
        t0: fixtures::unix_now() - 10 * DAY,
    };
    stripe.add_object("customers", object(b.customer("customer.created")));
    stripe.add_object(
        "payment_methods",
        object(b.payment_method("payment_method.attached")),
    );
    stripe.add_object(
        "subscriptions",
        object(b.subscription("customer.subscription.created", "active", 0)),
    );
    stripe.add_object(
        "invoices",
        object(b.invoice("invoice.paid", &cast.first_invoice, "paid", 1, 0)),
    );
    stripe.add_object(
        "payment_intents",
        object(b.payment_intent("payment_intent.succeeded", 5000)),
    );
    stripe.add_object(
        "charges",
        object(b.charge_refunded(5000, &[(&cast.refund, 5000)])),
    );
    stripe.add_object(
        "checkout/sessions",
        object(b.session("checkout.session.completed", "payment", 5000)),
    );
}

/// The decoded query of every request to `path`.
pub fn queries(stripe: &StripeStandIn, path: &str) -> Vec<Vec<(String, String)>> {
    stripe
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| {
            url::form_urlencoded::parse(r.query.as_bytes())
                .into_owned()
                .collect()
        })
        .collect()
}

fn has(query: &[(String, String)], key: &str, value: &str) -> bool {
    query.iter().any(|(k, v)| k == key && v == value)
}

async fn one(db: &TestDatabase, sql: &str) -> Value {
    let rows = billing::rows(&db.pool, sql).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{sql}: {rows}");
    rows[0].clone()
}

#[tokio::test]
async fn a_sync_of_every_type_in_both_api_shapes_fills_the_mirror_and_the_entitlements() {
    for shape in ApiShape::ALL {
        let db = TestDatabase::new().await;
        let stripe = StripeStandIn::start().await;
        let cast = Cast::fresh();
        add_account(&stripe, shape, &cast);
        let before = fixtures::unix_now();

        let summary = run_sync(&db, &stripe, &ObjectType::ALL)
            .await
            .expect("the sync succeeds");

        let source = format!("sync:{}", summary.run);
        for t in ObjectType::ALL {
            let figures = summary.of(t).expect("every type");
            assert_eq!(
                (figures.fetched, figures.written, figures.kept),
                (1, 1, 0),
                "{shape:?} {t:?}"
            );
        }
        let customer = one(
            &db,
            "SELECT id, email, deleted, last_event_id FROM customers",
        )
        .await;
        assert_eq!(
            customer,
            json!({ "id": cast.customer, "email": cast.email, "deleted": false,
                    "last_event_id": source }),
            "{shape:?}"
        );
        let card = one(&db, "SELECT id, customer_id FROM payment_methods").await;
        assert_eq!(
            card,
            json!({ "id": cast.payment_method, "customer_id": cast.customer })
        );
        let subscription = one(
            &db,
            "SELECT id, status, current_period_end IS NOT NULL AS has_period, last_event_id,
                    extract(epoch FROM stripe_version)::bigint AS version FROM subscriptions",
        )
        .await;
        assert_eq!(subscription["status"], "active", "{shape:?}");
        assert_eq!(
            subscription["has_period"], true,
            "{shape:?}: both shapes' periods"
        );
        assert_eq!(subscription["last_event_id"], source.as_str());
        let version = subscription["version"].as_i64().expect("a version");
        assert!(
            (before..=fixtures::unix_now()).contains(&version),
            "the version is the time of the request: {version}"
        );
        let entitlement = one(
            &db,
            "SELECT customer_id, subscription_id, status, price_id, product_id FROM entitlements",
        )
        .await;
        assert_eq!(
            entitlement,
            json!({ "customer_id": cast.customer, "subscription_id": cast.subscription,
                    "status": "active", "price_id": cast.price, "product_id": cast.product }),
            "{shape:?}"
        );
        let invoice = one(
            &db,
            "SELECT id, subscription_id, payment_intent_id, status, amount_paid FROM invoices",
        )
        .await;
        assert_eq!(
            invoice,
            json!({ "id": cast.first_invoice, "subscription_id": cast.subscription,
                    "payment_intent_id": Cast::invoice_payment_intent(&cast.first_invoice),
                    "status": "paid", "amount_paid": 2000 }),
            "{shape:?}: the invoice's subscription and PaymentIntent in either shape"
        );
        let payments = billing::rows(
            &db.pool,
            "SELECT id, kind, status, amount_refunded FROM payments ORDER BY kind DESC",
        )
        .await;
        assert_eq!(
            payments,
            json!([
                { "id": cast.payment_intent, "kind": "payment_intent", "status": "succeeded",
                  "amount_refunded": 0 },
                { "id": cast.charge, "kind": "charge", "status": "succeeded",
                  "amount_refunded": 5000 },
            ]),
            "{shape:?}"
        );
        let refund = one(&db, "SELECT id, charge_id, amount FROM refunds").await;
        assert_eq!(
            refund,
            json!({ "id": cast.refund, "charge_id": cast.charge, "amount": 5000 })
        );
        let session = one(
            &db,
            "SELECT id, status, payment_intent_id, order_reference FROM checkout_sessions",
        )
        .await;
        assert_eq!(
            session,
            json!({ "id": cast.session, "status": "complete",
                    "payment_intent_id": cast.payment_intent,
                    "order_reference": cast.order_reference })
        );
        assert_eq!(
            db.count("audit_log WHERE action = 'synced' AND actor = 'sync' AND event_id IS NULL")
                .await,
            7
        );
        assert_eq!(
            db.count("sync_runs WHERE outcome = 'succeeded' AND finished_at IS NOT NULL")
                .await,
            1
        );

        // What the lists hide or leave out unless asked.
        let subscriptions = queries(&stripe, "/v1/subscriptions");
        assert!(has(&subscriptions[0], "status", "all"), "{subscriptions:?}");
        let invoices = queries(&stripe, "/v1/invoices");
        assert!(
            has(&invoices[0], "expand[]", "data.payments"),
            "{invoices:?}"
        );
        let charges = queries(&stripe, "/v1/charges");
        assert!(has(&charges[0], "expand[]", "data.refunds"), "{charges:?}");
        let path = format!("/v1/customers/{}/payment_methods", cast.customer);
        assert_eq!(stripe.count("GET", &path), 1);
        assert_eq!(stripe.count("GET", "/v1/payment_methods"), 0);
        stripe.stop().await;
    }
}

#[tokio::test]
async fn a_sync_sends_no_email_and_writes_no_notice_ledger_entry_dunning_run_or_order() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let cast = Cast::fresh();
    add_account(&stripe, ApiShape::Dahlia, &cast);
    // A renewal that failed: as an event, it would open a dunning run.
    let b = Builder {
        shape: ApiShape::Dahlia,
        cast: &cast,
        t0: fixtures::unix_now() - 40 * DAY,
    };
    let renewal = b.invoice(
        "invoice.payment_failed",
        &cast.renewal_invoice,
        "open",
        1,
        30,
    );
    stripe.add_object("invoices", object(renewal));

    let summary = run_sync(&db, &stripe, &ObjectType::ALL)
        .await
        .expect("the sync succeeds");

    assert_eq!(summary.of(ObjectType::Invoices).map(|t| t.written), Some(2));
    assert_eq!(db.count("payments").await, 2);
    for table in [
        "emails",
        "app_notifications",
        "ledger_entries",
        "dunning_runs",
        "orders",
        "apalis.jobs",
    ] {
        assert_eq!(db.count(table).await, 0, "{table}");
    }

    // The same invoice paid, as an event after the sync: the effects the sync left out.
    let applier = Applier::new(&db.pool, billing::context());
    let mut paid = b.invoice("invoice.paid", &cast.renewal_invoice, "paid", 2, 30);
    paid["created"] = (fixtures::unix_now() + 60).into();
    assert_eq!(applier.deliver(&paid).await.expect("applied"), "applied");
    assert_eq!(db.count("ledger_entries").await, 1);
    assert_eq!(db.count("emails").await, 1);
}

/// The subscription of `cast` as an event of `created`, in `status`.
fn subscription_event(cast: &Cast, status: &str, created: i64) -> Value {
    let b = Builder {
        shape: ApiShape::Dahlia,
        cast,
        t0: fixtures::unix_now() - 10 * DAY,
    };
    let mut event = b.subscription("customer.subscription.updated", status, 0);
    event["created"] = created.into();
    event
}

async fn subscription_row(db: &TestDatabase) -> (String, String) {
    sqlx::query_as("SELECT status, last_event_id FROM subscriptions")
        .fetch_one(&db.pool)
        .await
        .expect("the subscription's row")
}

#[tokio::test]
async fn an_event_older_than_the_sync_is_stale_and_a_newer_one_applies() {
    let db = TestDatabase::new().await;
    let stripe = StripeStandIn::start().await;
    let cast = Cast::fresh();
    let now = fixtures::unix_now();
    stripe.add_object(
        "subscriptions",
        object(subscription_event(&cast, "active", now)),
    );
    let summary = run_sync(&db, &stripe, &[ObjectType::Subscriptions])
        .await
        .expect("the sync succeeds");
    let source = format!("sync:{}", summary.run);
    let applier = Applier::new(&db.pool, billing::context());

    let older = subscription_event(&cast, "past_due", now - 60);
    assert_eq!(applier.deliver(&older).await.expect("processed"), "stale");
    assert_eq!(
        subscription_row(&db).await,
        ("active".to_owned(), source.clone())
    );
    assert_eq!(db.count("app_notifications").await, 0);

    let newer = subscription_event(&cast, "past_due", now + 60);
    assert_eq!(applier.deliver(&newer).await.expect("processed"), "applied");
    let newer_id = newer["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        subscription_row(&db).await,
        ("past_due".to_owned(), newer_id.clone())
    );

    // A sync never overwrites a newer row: the event's stays, and the object is counted kept.
    let again = sync::sync(
        &db.pool,
        &api(&stripe),
        &Request::new(vec![ObjectType::Subscriptions], None, true),
        &Progress::log(),
    )
    .await
    .expect("the second sync succeeds");
    let figures = again.of(ObjectType::Subscriptions).expect("subscriptions");
    assert_eq!((figures.written, figures.kept), (0, 1));
    assert_eq!(
        subscription_row(&db).await,
        ("past_due".to_owned(), newer_id)
    );
    assert_eq!(
        db.count("audit_log WHERE action = 'synced'").await,
        1,
        "only the first sync wrote"
    );
}
