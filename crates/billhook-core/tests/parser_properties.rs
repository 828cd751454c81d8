//! Property tests over arbitrary input for the two parsers that see untrusted bytes: the
//! `Stripe-Signature` header (with the secret list) and the envelope. Neither may panic, and
//! each accepts exactly what its rules allow. Longer runs: the cargo-fuzz targets in `fuzz/`.

use billhook_core::stripe::envelope::LAST_CREATED;
use billhook_core::stripe::signature::verify;
use billhook_core::stripe::{
    Envelope, EnvelopeError, EventId, SignatureError, WebhookSecret, WebhookSecrets,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000;
const TOLERANCE: i64 = 300;
const SECRET: &str = "whsec_property_tests";

fn secrets() -> WebhookSecrets {
    WebhookSecrets::new(vec![
        WebhookSecret::new("old", "whsec_rotated_out"),
        WebhookSecret::new("primary", SECRET),
    ])
    .expect("valid secrets")
}

fn real_v1(timestamp: &str, body: &[u8]) -> String {
    let t: i64 = timestamp.parse().unwrap_or(NOW);
    let header = WebhookSecret::new("x", SECRET).sign(t, body);
    header
        .split_once(",v1=")
        .map(|(_, v1)| v1.to_owned())
        .expect("the signer writes a v1")
}

/// Pieces a header is made of, so that generated headers are often nearly valid.
fn header_piece(v1: String) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("t=".to_owned()),
        Just("v1=".to_owned()),
        Just("v0=".to_owned()),
        Just(",".to_owned()),
        Just("=".to_owned()),
        Just(" ".to_owned()),
        Just(NOW.to_string()),
        Just(v1.to_ascii_uppercase()),
        Just(v1),
        "[0-9a-fA-F]{0,66}",
        "[-+0-9]{0,21}",
        any::<String>(),
    ]
}

fn nearly_valid_header() -> impl Strategy<Value = (String, Vec<u8>)> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_flat_map(|body| {
        let v1 = real_v1(&NOW.to_string(), &body);
        (
            proptest::collection::vec(header_piece(v1), 0..12).prop_map(|p| p.concat()),
            Just(body),
        )
    })
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "evt_[A-Za-z0-9_]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("object".to_owned()),
                    any::<String>()
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An envelope whose fields are each valid or not, and the verdict its rules give.
fn envelope_case() -> impl Strategy<Value = (Value, Result<(), EnvelopeError>)> {
    let id = prop_oneof!["evt_[A-Za-z0-9_]{0,260}", any::<String>()];
    let event_type = prop_oneof!["[a-z._]{0,260}", any::<String>()];
    let object = prop_oneof![Just(json!("event")), Just(json!(null)), json_value()];
    let optional_text = prop_oneof![Just(json!(null)), any::<String>().prop_map(Value::from)];
    (
        id,
        event_type,
        object,
        optional_text.clone(),
        optional_text,
        json_value(),
        prop_oneof![3 => 0..=LAST_CREATED, 1 => any::<i64>()],
    )
        .prop_map(
            |(id, event_type, object, api_version, account, data_object, created)| {
                let event = json!({
                    "id": id, "object": object, "type": event_type, "created": created,
                    "api_version": api_version, "account": account,
                    "data": { "object": data_object },
                });
                let object_id = data_object.get("id").and_then(Value::as_str);
                // `object` is borrowed from the body, so a string JSON has to escape cannot be
                // read; Stripe's is always the plain `"event"`.
                let escaped = object
                    .as_str()
                    .is_some_and(|o| o.contains(|c: char| c == '"' || c == '\\' || c < ' '));
                let verdict = if escaped || !matches!(object, Value::Null | Value::String(_)) {
                    Err(EnvelopeError::NotAnEvent(String::new()))
                } else if object.as_str().is_some_and(|o| o != "event") {
                    Err(EnvelopeError::NotEventObject)
                } else if event_type.is_empty() || event_type.len() > 255 {
                    Err(EnvelopeError::InvalidType)
                } else if !(0..=LAST_CREATED).contains(&created) {
                    Err(EnvelopeError::InvalidCreated)
                } else if event_type.contains('\0') {
                    Err(EnvelopeError::NulCharacter("type"))
                } else if api_version.as_str().is_some_and(|v| v.contains('\0')) {
                    Err(EnvelopeError::NulCharacter("api_version"))
                } else if account.as_str().is_some_and(|v| v.contains('\0')) {
                    Err(EnvelopeError::NulCharacter("account"))
                } else if object_id.is_some_and(|v| v.contains('\0')) {
                    Err(EnvelopeError::NulCharacter("data.object.id"))
                } else {
                    EventId::parse(id).map(|_| ())
                };
                (event, verdict)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_header_and_body_is_answered_without_panic(header in any::<String>(), body in any::<Vec<u8>>()) {
        let result = verify(Some(&header), &body, &secrets(), NOW, TOLERANCE);
        prop_assert!(result.is_err(), "a random header verified: {header:?}");
    }

    #[test]
    fn a_nearly_valid_header_verifies_only_with_the_real_signature((header, body) in nearly_valid_header()) {
        let result = verify(Some(&header), &body, &secrets(), NOW, TOLERANCE);
        if let Ok(verified) = &result {
            // Hex digits are read in either case; the digest is the same.
            let real = real_v1(&verified.timestamp.to_string(), &body);
            prop_assert!(header.to_ascii_lowercase().contains(&real));
            prop_assert_eq!(verified.secret_label.as_str(), "primary");
            prop_assert!((verified.timestamp - NOW).abs() <= TOLERANCE);
        }
    }

    #[test]
    fn a_signed_body_verifies_and_any_changed_byte_does_not(
        body in proptest::collection::vec(any::<u8>(), 1..512),
        age in -TOLERANCE..=TOLERANCE,
        flip in any::<proptest::sample::Index>(),
        junk in "(,v0=[0-9a-f]{0,8}|,v2=[^,]{0,8}|,v1=[0-9a-f]{0,64})*",
    ) {
        let signer = WebhookSecret::new("x", SECRET);
        let header = format!("{}{junk}", signer.sign(NOW + age, &body));
        let verified = verify(Some(&header), &body, &secrets(), NOW, TOLERANCE);
        prop_assert_eq!(verified.map(|v| (v.timestamp, v.secret_label)), Ok((NOW + age, "primary".to_owned())));

        let mut changed = body.clone();
        changed[flip.index(body.len())] ^= 1;
        prop_assert_eq!(
            verify(Some(&header), &changed, &secrets(), NOW, TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_secret_list_parses_to_non_empty_secrets_with_distinct_sensible_labels(value in any::<String>()) {
        if let Ok(parsed) = WebhookSecrets::parse(&value) {
            let labels: Vec<&str> = parsed.iter().map(WebhookSecret::label).collect();
            for (i, secret) in parsed.iter().enumerate() {
                prop_assert!(!secret.expose().is_empty());
                prop_assert!(!labels[..i].contains(&secret.label()));
                prop_assert!(secret.label().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
                prop_assert!(!secret.expose().contains([',', ' ', '\t', '\n']));
            }
        }
    }

    #[test]
    fn any_bytes_are_parsed_without_panic(body in any::<Vec<u8>>()) {
        let _ = Envelope::parse(&body);
    }

    #[test]
    fn any_json_is_parsed_without_panic(value in json_value()) {
        let _ = Envelope::parse(&serde_json::to_vec(&value).expect("JSON"));
    }

    #[test]
    fn an_envelope_is_accepted_exactly_when_its_rules_allow((event, verdict) in envelope_case()) {
        let body = serde_json::to_vec(&event).expect("JSON");
        let parsed = Envelope::parse(&body);
        match (&parsed, &verdict) {
            (Err(EnvelopeError::NotAnEvent(_)), Err(EnvelopeError::NotAnEvent(_))) => {}
            _ => prop_assert_eq!(parsed.clone().map(|_| ()), verdict.clone(), "{}", event),
        }
        if let Ok(envelope) = parsed {
            prop_assert_eq!(envelope.id.as_str(), event["id"].as_str().unwrap_or_default());
            prop_assert_eq!(Some(envelope.event_type.as_str()), event["type"].as_str());
            prop_assert_eq!(envelope.api_version.as_deref(), event["api_version"].as_str());
            prop_assert_eq!(envelope.account.as_deref(), event["account"].as_str());
            prop_assert_eq!(envelope.object_id.as_deref(), event["data"]["object"]["id"].as_str());
        }
    }
}
