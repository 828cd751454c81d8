//! The edges of `Stripe-Signature` verification and of the secret list, pinned so that a
//! loosened or tightened rule fails here (each one was a surviving mutant once).

use billhook_core::stripe::signature::SecretsError;
use billhook_core::stripe::signature::verify;
use billhook_core::stripe::{SignatureError, WebhookSecret, WebhookSecrets};

const NOW: i64 = 1_700_000_000;
const TOLERANCE: i64 = 300;
const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

fn labels_and_secrets(value: &str) -> Result<Vec<(String, String)>, SecretsError> {
    WebhookSecrets::parse(value).map(|parsed| {
        parsed
            .iter()
            .map(|s| (s.label().to_owned(), s.expose().to_owned()))
            .collect()
    })
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(l, s)| ((*l).to_owned(), (*s).to_owned()))
        .collect()
}

/// The `v1` value of the header `secret` would send for `BODY` at `NOW`.
fn v1_of(secret: &WebhookSecret) -> String {
    let header = secret.sign(NOW, BODY);
    header
        .split_once(",v1=")
        .map(|(_, v1)| v1.to_owned())
        .expect("the signer writes a v1")
}

#[test]
fn a_secret_ending_in_equals_is_one_unlabelled_secret_not_a_label() {
    assert_eq!(
        labels_and_secrets("whsec_abc="),
        Ok(pairs(&[("secret-1", "whsec_abc=")]))
    );
    assert_eq!(
        labels_and_secrets("primary=whsec_abc=="),
        Ok(pairs(&[("primary", "whsec_abc==")]))
    );
}

#[test]
fn a_label_with_an_empty_secret_is_refused_and_named_by_position() {
    assert_eq!(
        labels_and_secrets("label="),
        Err(SecretsError::EmptySecret(1))
    );
    assert_eq!(
        labels_and_secrets("primary=whsec_a connect="),
        Err(SecretsError::EmptySecret(2))
    );
    assert_eq!(
        WebhookSecrets::new(vec![
            WebhookSecret::new("a", "whsec_a"),
            WebhookSecret::new("b", "whsec_b"),
            WebhookSecret::new("c", ""),
        ])
        .map(|_| ()),
        Err(SecretsError::EmptySecret(3))
    );
}

#[test]
fn labels_may_hold_letters_digits_dashes_underscores_and_dots() {
    assert_eq!(
        labels_and_secrets("connect-eu=whsec_1,eu_west.2=whsec_2,Primary9=whsec_3"),
        Ok(pairs(&[
            ("connect-eu", "whsec_1"),
            ("eu_west.2", "whsec_2"),
            ("Primary9", "whsec_3"),
        ]))
    );
}

#[test]
fn an_entry_whose_label_has_other_characters_is_an_unlabelled_secret() {
    for entry in [
        "a/b=whsec_1",
        "a:b=whsec_1",
        "é=whsec_1",
        "=whsec_1",
        "a+b=whsec_1",
    ] {
        assert_eq!(
            labels_and_secrets(entry),
            Ok(pairs(&[("secret-1", entry)])),
            "{entry}"
        );
    }
}

#[test]
fn entries_are_separated_by_commas_or_any_whitespace_only() {
    assert_eq!(
        labels_and_secrets(" a=whsec_1,\tb=whsec_2\n\nwhsec_3;x "),
        Ok(pairs(&[
            ("a", "whsec_1"),
            ("b", "whsec_2"),
            ("secret-3", "whsec_3;x"),
        ]))
    );
}

#[test]
fn errors_name_what_is_wrong() {
    assert_eq!(labels_and_secrets(" ,, "), Err(SecretsError::Empty));
    assert_eq!(
        labels_and_secrets("a=whsec_1 b=whsec_2 a=whsec_3"),
        Err(SecretsError::DuplicateLabel("a".into()))
    );
    assert_eq!(
        WebhookSecrets::new(Vec::new()).map(|_| ()),
        Err(SecretsError::Empty)
    );
}

#[test]
fn the_first_secret_is_the_first_listed() {
    let parsed = WebhookSecrets::parse("b=whsec_2 a=whsec_1").expect("parses");
    assert_eq!(parsed.first().label(), "b");
}

#[test]
fn two_identical_matching_v1_values_still_verify() {
    let secret = WebhookSecret::new("primary", "whsec_one");
    let secrets = WebhookSecrets::new(vec![secret.clone()]).expect("valid");
    let v1 = v1_of(&secret);
    for header in [
        format!("t={NOW},v1={v1},v1={v1}"),
        format!("t={NOW},v1={v1},v1={v1},v1={v1}"),
        format!("t={NOW},v1={v1},v1={},v1={v1}", "0".repeat(64)),
    ] {
        assert_eq!(
            verify(Some(&header), BODY, &secrets, NOW, TOLERANCE).map(|v| v.secret_label),
            Ok("primary".to_owned()),
            "{header}"
        );
    }
}

#[test]
fn a_match_with_the_first_of_several_secrets_is_named_after_it() {
    let first = WebhookSecret::new("first", "whsec_one");
    let secrets = WebhookSecrets::new(vec![
        first.clone(),
        WebhookSecret::new("second", "whsec_two"),
    ])
    .expect("valid");
    let header = first.sign(NOW, BODY);
    assert_eq!(
        verify(Some(&header), BODY, &secrets, NOW, TOLERANCE).map(|v| v.secret_label),
        Ok("first".to_owned())
    );
}

#[test]
fn the_tolerance_is_inclusive_on_both_sides() {
    let secret = WebhookSecret::new("primary", "whsec_one");
    let secrets = WebhookSecrets::new(vec![secret.clone()]).expect("valid");
    for (t, expected) in [
        (NOW - TOLERANCE, Ok(NOW - TOLERANCE)),
        (NOW + TOLERANCE, Ok(NOW + TOLERANCE)),
        (NOW, Ok(NOW)),
        (NOW - TOLERANCE - 1, Err(SignatureError::OutsideTolerance)),
        (NOW + TOLERANCE + 1, Err(SignatureError::OutsideTolerance)),
    ] {
        let header = secret.sign(t, BODY);
        assert_eq!(
            verify(Some(&header), BODY, &secrets, NOW, TOLERANCE).map(|v| v.timestamp),
            expected,
            "t={t}"
        );
    }
}

#[test]
fn a_forged_signature_is_a_mismatch_whatever_its_age() {
    let secrets = WebhookSecrets::new(vec![WebhookSecret::new("p", "whsec_one")]).expect("ok");
    let forged = WebhookSecret::new("x", "whsec_forger").sign(NOW - 10 * TOLERANCE, BODY);
    assert_eq!(
        verify(Some(&forged), BODY, &secrets, NOW, TOLERANCE),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn spaces_around_items_are_allowed() {
    let secret = WebhookSecret::new("primary", "whsec_one");
    let secrets = WebhookSecrets::new(vec![secret.clone()]).expect("valid");
    let header = format!(" t={NOW} , v1={} ", v1_of(&secret));
    assert!(verify(Some(&header), BODY, &secrets, NOW, TOLERANCE).is_ok());
}

#[test]
fn a_signed_plus_sign_or_an_overflowing_timestamp_is_malformed() {
    let secrets = WebhookSecrets::new(vec![WebhookSecret::new("p", "whsec_one")]).expect("ok");
    let v1 = "0".repeat(64);
    for t in ["+1700000000", "99999999999999999999", " 1", "1 2"] {
        let header = format!("t={t},v1={v1}");
        assert_eq!(
            verify(Some(&header), BODY, &secrets, NOW, TOLERANCE),
            Err(SignatureError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn each_refusal_has_its_own_metrics_name() {
    let names: Vec<&str> = [
        SignatureError::MissingHeader,
        SignatureError::Malformed,
        SignatureError::NoV1Signature,
        SignatureError::Mismatch,
        SignatureError::OutsideTolerance,
    ]
    .into_iter()
    .map(SignatureError::reason)
    .collect();
    assert_eq!(
        names,
        [
            "missing_header",
            "malformed",
            "no_v1_signature",
            "mismatch",
            "outside_tolerance"
        ]
    );
}
