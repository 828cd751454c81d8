//! The receiver's answers, pinned exactly: the JSON bodies of each refusal, and the body cap
//! at its edge whether the length is declared or the body is chunked.

use std::time::Duration;

use billhook_testkit::TestReceiver;
use billhook_testkit::fixtures::{self, ApiShape};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const CAP: usize = 4096;

/// A status code and a body, read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("JSON body ({e}): {:?}", String::from_utf8_lossy(&self.body))
        })
    }
}

/// How the request body is framed on the wire.
enum Framing {
    ContentLength,
    /// Transfer-Encoding: chunked, in chunks of this size, with no Content-Length.
    Chunked(usize),
    /// A Content-Length header with this value, and no body sent at all.
    DeclaredOnly(usize),
}

/// Sends one request over a plain TCP connection, so that the framing is exactly as written
/// (an HTTP client library chooses its own), and reads the answer.
async fn exchange(app: &TestReceiver, signature: &str, body: &[u8], framing: Framing) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let mut request = format!(
        "POST /api/webhooks/stripe HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nStripe-Signature: {signature}\r\n"
    )
    .into_bytes();
    match framing {
        Framing::ContentLength => {
            request.extend(format!("Content-Length: {}\r\n\r\n", body.len()).bytes());
            request.extend_from_slice(body);
        }
        Framing::Chunked(size) => {
            request.extend(b"Transfer-Encoding: chunked\r\n\r\n");
            for chunk in body.chunks(size) {
                request.extend(format!("{:x}\r\n", chunk.len()).bytes());
                request.extend_from_slice(chunk);
                request.extend(b"\r\n");
            }
            request.extend(b"0\r\n\r\n");
        }
        Framing::DeclaredOnly(length) => {
            request.extend(format!("Content-Length: {length}\r\n\r\n").bytes());
        }
    }
    stream.write_all(&request).await.expect("send the request");
    tokio::time::timeout(Duration::from_secs(5), read_answer(&mut stream))
        .await
        .expect("an answer within 5 s")
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        if let Some(answer) = parse_answer(&received) {
            return answer;
        }
        let n = stream.read(&mut buffer).await.expect("read the answer");
        assert!(
            n > 0,
            "connection closed mid-answer: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
    }
}

/// The answer once `received` holds all of it (the receiver always sends Content-Length).
fn parse_answer(received: &[u8]) -> Option<Answer> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    let mut content_type = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    let body = received.get(end + 4..end + 4 + length)?.to_vec();
    Some(Answer {
        status,
        content_type,
        body,
    })
}

/// A valid event, pretty-printed and padded with trailing whitespace (still the same JSON) to
/// exactly `size` bytes, and its signature.
fn signed_body_of_size(app: &TestReceiver, size: usize) -> (Vec<u8>, String) {
    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let mut body = serde_json::to_vec(&event).expect("JSON");
    assert!(body.len() <= size, "the fixture fits in {size} bytes");
    body.resize(size, b' ');
    let signature = app.secret.sign(fixtures::unix_now(), &body);
    (body, signature)
}

async fn spawn() -> TestReceiver {
    TestReceiver::spawn_with(|s| s.max_body_bytes = CAP).await
}

async fn stored_events(app: &TestReceiver) -> i64 {
    app.db.count("webhook_events").await
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_with_content_length_is_accepted() {
    let app = spawn().await;
    let (body, signature) = signed_body_of_size(&app, CAP);
    let answer = exchange(&app, &signature, &body, Framing::ContentLength).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.json(),
        json!({ "received": true, "duplicate": false })
    );
    assert_eq!(stored_events(&app).await, 1);
}

#[tokio::test]
async fn a_body_one_byte_over_the_cap_with_content_length_is_413() {
    let app = spawn().await;
    let (body, signature) = signed_body_of_size(&app, CAP + 1);
    let answer = exchange(&app, &signature, &body, Framing::ContentLength).await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json(), json!({ "error": "payload too large" }));
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_any_body_arrives() {
    let app = spawn().await;
    let answer = exchange(&app, "t=1,v1=00", b"", Framing::DeclaredOnly(CAP + 1)).await;
    assert_eq!(answer.status, 413);
    let answer = exchange(&app, "t=1,v1=00", b"", Framing::DeclaredOnly(1 << 30)).await;
    assert_eq!(answer.status, 413);
}

#[tokio::test]
async fn a_chunked_body_of_exactly_the_cap_is_accepted() {
    let app = spawn().await;
    let (body, signature) = signed_body_of_size(&app, CAP);
    let answer = exchange(&app, &signature, &body, Framing::Chunked(1000)).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(stored_events(&app).await, 1);
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_is_413_with_its_json_body() {
    let app = spawn().await;
    for chunk_size in [1000, CAP, CAP + 1] {
        let (body, signature) = signed_body_of_size(&app, CAP + 1);
        let answer = exchange(&app, &signature, &body, Framing::Chunked(chunk_size)).await;
        assert_eq!(answer.status, 413, "chunks of {chunk_size}");
        assert_eq!(answer.json(), json!({ "error": "payload too large" }));
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/json"),
            "chunks of {chunk_size}"
        );
    }
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn past_the_burst_a_failing_client_gets_429_with_its_json_body() {
    let app = TestReceiver::spawn_with(|s| {
        s.reject_burst = 2;
        s.reject_limit_per_minute = 1;
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        let answer = exchange(&app, "t=1,v1=00", b"{}", Framing::ContentLength).await;
        answers.push((answer.status, answer.json()));
    }
    let unauthorized = json!({ "error": "invalid signature" });
    let limited = json!({ "error": "too many invalid requests" });
    assert_eq!(
        answers,
        [
            (401, unauthorized.clone()),
            (401, unauthorized),
            (429, limited)
        ]
    );
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test]
async fn a_verified_body_that_is_no_event_is_400_with_its_json_body() {
    let app = spawn().await;
    let body = br#"{"id":"evt_","object":"event","type":"x","created":1,"data":{"object":{}}}"#;
    let signature = app.secret.sign(fixtures::unix_now(), body);
    let answer = exchange(&app, &signature, body, Framing::ContentLength).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json(), json!({ "error": "malformed event" }));
}

#[tokio::test]
async fn a_redelivery_is_200_and_says_it_is_a_duplicate() {
    let app = spawn().await;
    let (body, signature) = signed_body_of_size(&app, 2048);
    let first = exchange(&app, &signature, &body, Framing::ContentLength).await;
    let second = exchange(&app, &signature, &body, Framing::Chunked(512)).await;
    assert_eq!(
        first.json(),
        json!({ "received": true, "duplicate": false })
    );
    assert_eq!(second.status, 200);
    assert_eq!(
        second.json(),
        json!({ "received": true, "duplicate": true })
    );
    assert_eq!(stored_events(&app).await, 1);
}
