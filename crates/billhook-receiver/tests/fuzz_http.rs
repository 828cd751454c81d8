//! Property tests of the receiver over HTTP: whatever headers and body arrive at the webhook
//! endpoint, the answer is never a 5xx, the receiver never panics, and a refused request
//! writes nothing. One receiver (and database) serves every case of a test.

use std::time::Duration;

use billhook_testkit::TestReceiver;
use billhook_testkit::fixtures::{self, ApiShape};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

const CAP: usize = 2048;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// A receiver whose rate limit never trips (every case must reach the code under test) and
/// whose body cap is small enough for generated bodies to cross it.
fn spawn(runtime: &Runtime) -> TestReceiver {
    runtime.block_on(TestReceiver::spawn_with(|s| {
        s.max_body_bytes = CAP;
        s.reject_burst = 1_000_000;
    }))
}

/// What was written so far: stored events and queued jobs.
async fn written(app: &TestReceiver) -> (i64, i64) {
    (
        app.db.count("webhook_events").await,
        app.db.count("apalis.jobs").await,
    )
}

/// How the signature header of a case is made.
#[derive(Debug, Clone)]
enum Signature {
    Absent,
    Arbitrary(Vec<u8>),
    /// Valid for the body as sent.
    Valid,
    /// Valid for the body, but signed this many seconds away from now.
    Aged(i64),
    /// Valid, with arbitrary text after it.
    ValidThen(String),
}

fn signature() -> impl Strategy<Value = Signature> {
    // Half the cases are validly signed, so that they reach the envelope and the database.
    prop_oneof![
        1 => Just(Signature::Absent),
        1 => header_value(120).prop_map(Signature::Arbitrary),
        4 => Just(Signature::Valid),
        1 => prop_oneof![-100_000_i64..-301, 301_i64..100_000].prop_map(Signature::Aged),
        1 => "[ -~]{0,40}".prop_map(Signature::ValidThen),
    ]
}

/// Header names the receiver reads, and others.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("content-type".to_owned()),
        Just("user-agent".to_owned()),
        Just("x-forwarded-for".to_owned()),
        Just("forwarded".to_owned()),
        Just("x-real-ip".to_owned()),
        Just("stripe-signature".to_owned()),
        Just("accept".to_owned()),
        "[a-z][a-z0-9-]{0,20}",
    ]
}

/// A header value may hold any byte but CR, LF, NUL and DEL.
fn header_value(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("a header value byte", |b| {
            *b == b'\t' || (*b >= b' ' && *b != 0x7f)
        }),
        0..max,
    )
}

fn extra_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    proptest::collection::vec((header_name(), header_value(60)), 0..6)
}

/// An event body with one field replaced by an arbitrary JSON value, or arbitrary bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("id"),
        Just("object"),
        Just("type"),
        Just("created"),
        Just("api_version"),
        Just("account"),
        Just("livemode"),
        Just("data"),
    ];
    let value = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "evt_[A-Za-z0-9]{0,4}".prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..CAP + 200),
        (field, value).prop_map(|(field, value)| {
            let mut event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
            event[field] = value;
            fixtures::to_body(&event)
        }),
    ]
}

#[test]
fn any_request_is_answered_without_a_5xx_and_a_refused_one_writes_nothing() {
    let runtime = runtime();
    let app = spawn(&runtime);
    let url = app.webhook_url();
    let strategy = (signature(), extra_headers(), body());
    runner(128)
        .run(&strategy, |(signature, headers, body)| {
            runtime.block_on(async {
                let before = written(&app).await;
                let mut request = app.client.post(&url).body(body.clone());
                let header = match &signature {
                    Signature::Absent => None,
                    Signature::Arbitrary(bytes) => Some(bytes.clone()),
                    Signature::Valid => Some(app.secret.sign(fixtures::unix_now(), &body).into()),
                    Signature::Aged(by) => {
                        Some(app.secret.sign(fixtures::unix_now() + by, &body).into())
                    }
                    Signature::ValidThen(rest) => Some(
                        format!("{}{rest}", app.secret.sign(fixtures::unix_now(), &body)).into(),
                    ),
                };
                if let Some(value) = header {
                    request = request.header("stripe-signature", value);
                }
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
                let status = response.status();
                let answer: Value = response
                    .json()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
                let after = written(&app).await;
                prop_assert!(!status.is_server_error(), "{status}: {answer}");
                if status == 200 {
                    prop_assert_eq!(answer["received"].as_bool(), Some(true));
                } else {
                    prop_assert_eq!(before, after, "{} wrote something", status);
                    prop_assert!(answer["error"].is_string(), "{answer}");
                }
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Any header lines at all (as long as the request is framed), written straight to the socket.
#[test]
fn any_header_bytes_are_answered_without_a_5xx_and_write_nothing() {
    let runtime = runtime();
    let app = spawn(&runtime);
    let address = app.address.trim_start_matches("http://").to_owned();
    let line = proptest::collection::vec(
        any::<u8>().prop_filter("not a line break", |b| *b != b'\r' && *b != b'\n'),
        0..80,
    );
    let strategy = (
        proptest::collection::vec(line, 0..8),
        proptest::collection::vec(any::<u8>(), 0..256),
    );
    runner(64)
        .run(&strategy, |(lines, body)| {
            runtime.block_on(async {
                let mut request = format!(
                    "POST /api/webhooks/stripe HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n"
                )
                .into_bytes();
                for line in lines {
                    request.extend(line);
                    request.extend(b"\r\n");
                }
                request.extend(format!("Content-Length: {}\r\n\r\n", body.len()).bytes());
                request.extend(body);

                let mut stream = TcpStream::connect(&address).await.expect("connect");
                // The receiver may answer and close before reading everything (a bad header
                // line); a failed write or a reset then is an answer, not a failure.
                let _ = stream.write_all(&request).await;
                let mut answer = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
                        .await
                        .map_err(|_| TestCaseError::fail("no answer within 15 s"))?;
                let status_line = String::from_utf8_lossy(&answer)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                if read.is_ok() && !answer.is_empty() {
                    prop_assert!(!status_line.starts_with("HTTP/1.1 5"), "{status_line}");
                }
                prop_assert_eq!(written(&app).await, (0, 0));
                Ok(())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // Still serving after all that.
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let status = runtime.block_on(async { app.deliver(&event).await.status() });
    assert_eq!(status, 200);
}
