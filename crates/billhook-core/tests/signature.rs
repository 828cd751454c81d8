//! `Stripe-Signature` verification, as pure functions with a pinned clock.

use billhook_core::stripe::signature::verify;
use billhook_core::stripe::{SignatureError, WebhookSecret, WebhookSecrets};

const NOW: i64 = 1_700_000_000;
const TOLERANCE: i64 = 300;
const SECRET: &str = "whsec_test_secret_for_independent_vector";
/// Pretty-printed and non-ASCII, as Stripe sends bodies: verified as bytes, never re-serialised.
const BODY: &str = "{\n  \"id\": \"evt_1PZ\",\n  \"object\": \"event\",\n  \"type\": \"customer.created\",\n  \"data\": {\n    \"object\": {\n      \"name\": \"Zoë Ångström — 東京\"\n    }\n  }\n}";
/// Computed outside this codebase, with Python's standard library:
/// `hmac.new(SECRET, b"1700000000." + BODY.encode(), hashlib.sha256).hexdigest()`
const PYTHON_V1: &str = "84e7f6dd793dda37d6cc59af7d0959952573fe5e4c260325452ad21df953600f";

fn secrets(list: &[(&str, &str)]) -> WebhookSecrets {
    WebhookSecrets::new(
        list.iter()
            .map(|(l, s)| WebhookSecret::new(*l, *s))
            .collect(),
    )
    .expect("valid secrets")
}

fn one_secret() -> WebhookSecrets {
    secrets(&[("primary", SECRET)])
}

fn check(header: &str, body: &[u8]) -> Result<String, SignatureError> {
    verify(Some(header), body, &one_secret(), NOW, TOLERANCE).map(|v| v.secret_label)
}

#[test]
fn an_independently_computed_signature_verifies() {
    let header = format!("t={NOW},v1={PYTHON_V1}");
    assert_eq!(check(&header, BODY.as_bytes()), Ok("primary".into()));
}

#[test]
fn our_signer_matches_the_independent_vector() {
    let header = WebhookSecret::new("x", SECRET).sign(NOW, BODY.as_bytes());
    assert_eq!(header, format!("t={NOW},v1={PYTHON_V1}"));
}

#[test]
fn the_verified_timestamp_is_returned() {
    let header = format!("t={NOW},v1={PYTHON_V1}");
    let verified = verify(
        Some(&header),
        BODY.as_bytes(),
        &one_secret(),
        NOW,
        TOLERANCE,
    )
    .expect("verifies");
    assert_eq!(verified.timestamp, NOW);
}

#[test]
fn a_tampered_body_is_a_mismatch() {
    let header = format!("t={NOW},v1={PYTHON_V1}");
    let tampered = BODY.replace("Zoë", "Zoe");
    assert_eq!(
        check(&header, tampered.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_reserialised_body_no_longer_verifies() {
    let header = format!("t={NOW},v1={PYTHON_V1}");
    let value: serde_json::Value = serde_json::from_str(BODY).expect("JSON");
    let compact = serde_json::to_vec(&value).expect("serialise");
    assert_eq!(check(&header, &compact), Err(SignatureError::Mismatch));
}

#[test]
fn a_wrong_secret_is_a_mismatch() {
    let header = WebhookSecret::new("x", "whsec_someone_else").sign(NOW, BODY.as_bytes());
    assert_eq!(
        check(&header, BODY.as_bytes()),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn a_timestamp_outside_the_tolerance_is_refused_in_both_directions() {
    let signer = WebhookSecret::new("x", SECRET);
    for t in [NOW - TOLERANCE - 1, NOW + TOLERANCE + 1] {
        let header = signer.sign(t, BODY.as_bytes());
        assert_eq!(
            check(&header, BODY.as_bytes()),
            Err(SignatureError::OutsideTolerance),
            "t={t}"
        );
    }
    let at_the_edge = signer.sign(NOW - TOLERANCE, BODY.as_bytes());
    assert!(check(&at_the_edge, BODY.as_bytes()).is_ok());
}

#[test]
fn any_of_several_v1_signatures_may_match() {
    let wrong = "0".repeat(64);
    let header = format!("t={NOW},v1={wrong},v1={PYTHON_V1}");
    assert_eq!(check(&header, BODY.as_bytes()), Ok("primary".into()));
}

#[test]
fn the_second_configured_secret_matches_and_is_named() {
    let configured = secrets(&[("old", "whsec_rotated_out"), ("new", SECRET)]);
    let header = format!("t={NOW},v1={PYTHON_V1}");
    let verified =
        verify(Some(&header), BODY.as_bytes(), &configured, NOW, TOLERANCE).expect("verifies");
    assert_eq!(verified.secret_label, "new");
}

#[test]
fn v0_alone_does_not_count() {
    let header = format!("t={NOW},v0={PYTHON_V1}");
    assert_eq!(
        check(&header, BODY.as_bytes()),
        Err(SignatureError::NoV1Signature)
    );
}

#[test]
fn v0_and_unknown_schemes_beside_v1_are_ignored() {
    let header = format!("t={NOW},v0=abc,v9=zzz,v1={PYTHON_V1}");
    assert_eq!(check(&header, BODY.as_bytes()), Ok("primary".into()));
}

#[test]
fn a_missing_header_is_named() {
    let result = verify(None, BODY.as_bytes(), &one_secret(), NOW, TOLERANCE);
    assert_eq!(result, Err(SignatureError::MissingHeader));
}

#[test]
fn malformed_headers_are_refused() {
    for header in [
        "",
        "garbage",
        &format!("v1={PYTHON_V1}"),
        &format!("t=,v1={PYTHON_V1}"),
        &format!("t=-5,v1={PYTHON_V1}"),
        &format!("t=17e8,v1={PYTHON_V1}"),
        &format!("t={NOW};v1={PYTHON_V1}"),
    ] {
        assert_eq!(
            check(header, BODY.as_bytes()),
            Err(SignatureError::Malformed),
            "{header:?}"
        );
    }
}

#[test]
fn a_duplicate_timestamp_is_malformed() {
    let header = format!("t={NOW},t={NOW},v1={PYTHON_V1}");
    assert_eq!(
        check(&header, BODY.as_bytes()),
        Err(SignatureError::Malformed)
    );
}

#[test]
fn a_v1_that_is_not_a_sha256_digest_never_matches() {
    let header = format!("t={NOW},v1=nothex,v1={}", &PYTHON_V1[..62]);
    assert_eq!(
        check(&header, BODY.as_bytes()),
        Err(SignatureError::NoV1Signature)
    );
}

#[test]
fn secrets_parse_with_labels_and_by_position() {
    let parsed = WebhookSecrets::parse("primary=whsec_a, whsec_b connect=whsec_c").expect("parses");
    let labels: Vec<_> = parsed.iter().map(|s| (s.label(), s.expose())).collect();
    assert_eq!(
        labels,
        [
            ("primary", "whsec_a"),
            ("secret-2", "whsec_b"),
            ("connect", "whsec_c")
        ]
    );
}

#[test]
fn bad_secret_lists_are_refused() {
    assert!(WebhookSecrets::parse("").is_err());
    assert!(WebhookSecrets::parse(" , ").is_err());
    assert!(WebhookSecrets::parse("a=whsec_1,a=whsec_2").is_err());
    assert!(WebhookSecrets::parse("a=").is_err());
}

#[test]
fn secrets_never_show_in_debug_output() {
    let parsed = WebhookSecrets::parse("primary=whsec_very_secret").expect("parses");
    let shown = format!("{parsed:?}");
    assert!(!shown.contains("whsec_very_secret"), "{shown}");
    assert!(shown.contains("primary"));
}
