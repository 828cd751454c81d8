//! The real `billhook-receiver` binary: it refuses bad configuration and an unmigrated
//! database with a clear message, and SIGTERM lets in-flight requests finish.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use billhook_testkit::TestDatabase;
use billhook_testkit::fixtures::{self, ApiShape};
use billhook_testkit::receiver::TEST_SECRET;

fn receiver() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billhook-receiver"));
    command.env_clear().env("BILLHOOK_LOG_FORMAT", "text");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run billhook-receiver")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn without_a_database_url_or_secret_it_refuses_to_start_and_says_which() {
    let output = run(&mut receiver());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(message.contains("BILLHOOK_WEBHOOK_SECRETS"), "{message}");
    // Where a developer finds one.
    assert!(message.contains(".dev/database-url"), "{message}");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_zero_tolerance_is_refused_at_start() {
    let output = run(receiver()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("BILLHOOK_WEBHOOK_SECRETS", TEST_SECRET)
        .env("BILLHOOK_SIGNATURE_TOLERANCE", "0s"));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("BILLHOOK_SIGNATURE_TOLERANCE") || message.contains("signature-tolerance"),
        "{message}"
    );
    assert!(message.contains("greater than zero"), "{message}");
}

#[test]
fn secrets_never_appear_in_startup_errors() {
    let output = run(receiver()
        .env(
            "DATABASE_URL",
            "postgres://billhook:hunter2-password@127.0.0.1:1/none",
        )
        .env("BILLHOOK_WEBHOOK_SECRETS", "primary=whsec_do_not_print_me")
        .env("BILLHOOK_DATABASE_TIMEOUT", "300ms"));
    assert!(!output.status.success());
    let all = format!(
        "{}{}",
        stderr(&output),
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(!all.contains("hunter2"), "{all}");
    assert!(!all.contains("whsec_do_not_print_me"), "{all}");
}

#[tokio::test]
async fn an_unmigrated_database_is_refused_with_the_command_to_run() {
    let db = TestDatabase::unmigrated().await;
    let output = run(receiver()
        .env("DATABASE_URL", &db.url)
        .env("BILLHOOK_WEBHOOK_SECRETS", TEST_SECRET)
        .env("BILLHOOK_RECEIVER_LISTEN", "127.0.0.1:0")
        .env("BILLHOOK_RECEIVER_ADMIN_LISTEN", "127.0.0.1:0"));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("billhook-worker migrate"), "{message}");
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the receiver did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let db = TestDatabase::new().await;
    let (port, admin_port) = (free_port(), free_port());
    let child = receiver()
        .env("DATABASE_URL", &db.url)
        .env("BILLHOOK_WEBHOOK_SECRETS", TEST_SECRET)
        .env("BILLHOOK_RECEIVER_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "BILLHOOK_RECEIVER_ADMIN_LISTEN",
            format!("127.0.0.1:{admin_port}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start billhook-receiver");
    let mut running = Running(child);
    wait_until_listening(port);

    let event = fixtures::event("customer.created", ApiShape::Dahlia).expect("fixture");
    let body = fixtures::to_body(&event);
    let signature = billhook_core::stripe::WebhookSecret::new("t", TEST_SECRET)
        .sign(fixtures::unix_now(), &body);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    write!(
        stream,
        "POST /api/webhooks/stripe HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Stripe-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("send headers");
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).expect("send half the body");
    std::thread::sleep(Duration::from_millis(300));

    let pid = running.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest).expect("send the rest after SIGTERM");

    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = wait_for_exit(&mut running.0, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
    assert_eq!(db.count("webhook_events").await, 1);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no longer listening"
    );
}
