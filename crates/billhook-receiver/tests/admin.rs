//! The internal listener: health, readiness and Prometheus metrics.

use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::{TestDatabase, TestReceiver, receiver};

#[tokio::test]
async fn healthz_and_readyz_answer_on_the_admin_port_only() {
    let app = TestReceiver::spawn().await;
    assert_eq!(app.admin_get("/healthz").await.status(), 200);
    assert_eq!(app.admin_get("/readyz").await.status(), 200);
    let on_public_port = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("GET");
    assert_eq!(on_public_port.status(), 404);
}

#[tokio::test]
async fn readyz_is_503_and_names_the_command_when_the_database_is_not_migrated() {
    let db = TestDatabase::unmigrated().await;
    let settings = receiver::settings(&db.url);
    let app = billhook_receiver::Application::build_with_pool(settings.clone(), db.pool.clone())
        .expect("app");
    let app = TestReceiver::start(db, settings, app);

    let response = app.admin_get("/readyz").await;

    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("JSON");
    let reason = body["reason"].as_str().expect("a reason");
    assert!(reason.contains("billhook-worker migrate"), "{reason}");
}

#[tokio::test]
async fn metrics_count_outcomes_and_signature_failures_by_reason() {
    let app = TestReceiver::spawn().await;
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    app.deliver(&event).await;
    app.deliver(&event).await;
    app.post(b"{}".to_vec(), None).await;
    app.post(b"{}".to_vec(), Some("t=1,v1=00".into())).await;

    let text = app.admin_get("/metrics").await.text().await.expect("text");

    for line in [
        r#"billhook_receiver_requests_total{outcome="stored"} 1"#,
        r#"billhook_receiver_requests_total{outcome="duplicate"} 1"#,
        r#"billhook_receiver_requests_total{outcome="unauthorized"} 2"#,
        r#"billhook_receiver_signature_failures_total{reason="missing_header"} 1"#,
        r#"billhook_receiver_signature_failures_total{reason="no_v1_signature"} 1"#,
        r#"billhook_receiver_ingest_duration_seconds_count{outcome="stored"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}
