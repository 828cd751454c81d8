//! The edges of the envelope rules, pinned so that a loosened or tightened check fails here
//! (each one was a surviving mutant once).

use billhook_core::stripe::{Envelope, EnvelopeError, EventId};
use serde_json::{Value, json};

fn event() -> Value {
    json!({
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "object": "event",
        "type": "customer.created",
        "created": 1_700_000_000,
        "api_version": "2024-06-20",
        "livemode": true,
        "account": "acct_1",
        "data": { "object": { "id": "cus_1" } }
    })
}

fn parse(event: &Value) -> Result<Envelope, EnvelopeError> {
    Envelope::parse(&serde_json::to_vec(event).expect("JSON"))
}

fn with(field: &str, value: Value) -> Value {
    let mut event = event();
    event[field] = value;
    event
}

#[test]
fn every_envelope_field_is_read() {
    assert_eq!(
        parse(&event()),
        Ok(Envelope {
            id: EventId::parse("evt_1NG8Du2eZvKYlo2CUI79vXWy").expect("an id"),
            event_type: "customer.created".into(),
            created: 1_700_000_000,
            api_version: Some("2024-06-20".into()),
            livemode: true,
            account: Some("acct_1".into()),
            object_id: Some("cus_1".into()),
            customer_id: None,
        })
    );
}

#[test]
fn the_customer_is_the_object_itself_or_the_one_it_names() {
    let customer_of = |object: Value| {
        let mut event = event();
        event["data"]["object"] = object;
        parse(&event).expect("an event").customer_id
    };
    assert_eq!(
        customer_of(json!({"id": "cus_1", "object": "customer"})),
        Some("cus_1".into())
    );
    assert_eq!(
        customer_of(json!({"id": "in_1", "object": "invoice", "customer": "cus_2"})),
        Some("cus_2".into())
    );
    assert_eq!(
        customer_of(json!({"id": "pi_1", "customer": {"id": "cus_3", "object": "customer"}})),
        Some("cus_3".into())
    );
    assert_eq!(customer_of(json!({"id": "pi_1", "customer": null})), None);
    assert_eq!(
        customer_of(json!({"id": "prod_1", "object": "product"})),
        None
    );
    assert_eq!(customer_of(json!({"id": "pi_1", "customer": 7})), None);
}

#[test]
fn an_event_id_is_evt_and_at_least_one_letter_or_digit() {
    for refused in [
        "", "evt_", "evt", "cus_123", "EVT_123", "xevt_1", "evt_1-2", "evt_1 ", "evt_é",
    ] {
        assert_eq!(
            EventId::parse(refused),
            Err(EnvelopeError::InvalidId),
            "{refused:?}"
        );
    }
    for accepted in ["evt_1", "evt_a_B", "evt__", "evt_1NG8Du2eZvKYlo2CUI79vXWy"] {
        assert_eq!(
            EventId::parse(accepted).map(|id| id.as_str().to_owned()),
            Ok(accepted.to_owned())
        );
    }
}

#[test]
fn an_event_id_may_be_255_characters_but_not_256() {
    let longest = format!("evt_{}", "a".repeat(251));
    assert_eq!(longest.len(), 255);
    assert!(EventId::parse(longest.clone()).is_ok());
    assert_eq!(
        EventId::parse(format!("{longest}a")),
        Err(EnvelopeError::InvalidId)
    );
}

#[test]
fn an_event_id_is_a_plain_string_in_json_and_is_checked_when_read() {
    let id = EventId::parse("evt_123").expect("an id");
    assert_eq!(id.to_string(), "evt_123");
    assert_eq!(String::from(id.clone()), "evt_123");
    assert_eq!(
        serde_json::to_value(&id).expect("serialises"),
        json!("evt_123")
    );
    assert_eq!(
        serde_json::from_value::<EventId>(json!("evt_123")).expect("deserialises"),
        id
    );
    assert!(serde_json::from_value::<EventId>(json!("cus_123")).is_err());
    assert_eq!(
        EventId::try_from("evt_".to_owned()),
        Err(EnvelopeError::InvalidId)
    );
}

#[test]
fn an_invalid_id_in_the_body_is_refused() {
    for id in ["", "evt_", "cus_123"] {
        assert_eq!(parse(&with("id", json!(id))), Err(EnvelopeError::InvalidId));
    }
}

#[test]
fn an_event_type_is_one_to_255_bytes() {
    assert_eq!(
        parse(&with("type", json!(""))),
        Err(EnvelopeError::InvalidType)
    );
    let longest = format!("a.{}", "b".repeat(253));
    assert_eq!(longest.len(), 255);
    assert_eq!(
        parse(&with("type", json!(longest))).map(|e| e.event_type),
        Ok(longest.clone())
    );
    assert_eq!(
        parse(&with("type", json!(format!("{longest}b")))),
        Err(EnvelopeError::InvalidType)
    );
    assert_eq!(
        parse(&with("type", json!("x"))).map(|e| e.event_type),
        Ok("x".into())
    );
}

#[test]
fn the_type_limit_counts_bytes_not_characters() {
    // 128 two-byte characters: 128 characters, 256 bytes.
    let wide = "é".repeat(128);
    assert_eq!(
        parse(&with("type", json!(wide))),
        Err(EnvelopeError::InvalidType)
    );
}

#[test]
fn the_object_must_be_event_when_present() {
    assert_eq!(
        parse(&with("object", json!("customer"))),
        Err(EnvelopeError::NotEventObject)
    );
    let mut without = event();
    without.as_object_mut().expect("an object").remove("object");
    assert!(parse(&without).is_ok());
}

#[test]
fn optional_fields_default_when_absent_or_null() {
    let mut event = event();
    let fields = event.as_object_mut().expect("an object");
    fields.remove("api_version");
    fields.remove("livemode");
    fields.insert("account".into(), Value::Null);
    let envelope = parse(&event).expect("an event");
    assert_eq!(envelope.api_version, None);
    assert!(!envelope.livemode);
    assert_eq!(envelope.account, None);
}

#[test]
fn a_missing_required_field_is_not_an_event() {
    for field in ["id", "type", "created", "data"] {
        let mut event = event();
        event.as_object_mut().expect("an object").remove(field);
        assert!(
            matches!(parse(&event), Err(EnvelopeError::NotAnEvent(_))),
            "{field}"
        );
    }
    let mut event = event();
    event["data"] = json!({});
    assert!(matches!(parse(&event), Err(EnvelopeError::NotAnEvent(_))));
}

#[test]
fn data_object_of_any_json_kind_is_accepted_with_no_object_id() {
    for object in [
        json!(null),
        json!(true),
        json!(-1),
        json!(18_446_744_073_709_551_615_u64),
        json!(1.5),
        json!("cus_1"),
        json!([{ "id": "cus_1" }, 2]),
        json!({ "id": null }),
        json!({ "id": { "id": "cus_1" } }),
    ] {
        let mut event = event();
        event["data"]["object"] = object.clone();
        assert_eq!(parse(&event).map(|e| e.object_id), Ok(None), "{object}");
    }
}

#[test]
fn a_nul_in_api_version_is_refused() {
    assert_eq!(
        parse(&with("api_version", json!("2024\u{0}"))),
        Err(EnvelopeError::NulCharacter("api_version"))
    );
}
