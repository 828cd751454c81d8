//! The part of a Stripe event the receiver reads: enough to store, order and route it.
//! Everything else stays in the raw body, which is kept byte for byte.

use std::fmt;

use serde::Deserialize;

/// A Stripe event id (`evt_…`). Parsed once at the boundary; past it, ids are this type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn parse(value: impl Into<String>) -> Result<Self, EnvelopeError> {
        let value = value.into();
        let valid = value.len() <= 255
            && value.starts_with("evt_")
            && value.len() > 4
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(Self(value))
        } else {
            Err(EnvelopeError::InvalidId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = EnvelopeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The envelope fields of a verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: EventId,
    pub event_type: String,
    /// Event time (Unix seconds): used for ordering, never for rejection.
    pub created: i64,
    /// The API version the payload is rendered in; `None` for events from before versioning.
    pub api_version: Option<String>,
    pub livemode: bool,
    /// The connected account for Connect events.
    pub account: Option<String>,
    /// `data.object.id`: the Stripe object the event is about, when it has a string id. The
    /// worker serialises the events of one object on it.
    pub object_id: Option<String>,
    /// The Stripe customer the event concerns: the object itself when it is a customer, else
    /// its `customer` field (an id, or an expanded customer's id). Lets the console list a
    /// customer's events.
    pub customer_id: Option<String>,
}

/// 9999-12-31T23:59:59Z in Unix seconds: the last `created` accepted.
pub const LAST_CREATED: i64 = 253_402_300_799;

/// Stripe's object ids are at most 255 characters (its API reference: "treat IDs as opaque
/// strings up to 255 characters").
pub const MAX_ID_LEN: usize = 255;

/// An id longer than Stripe ever makes is not kept as the event's object or customer: the event
/// is still stored (it was signed, so it is Stripe's and must not be lost), but without the
/// indexed columns no index entry could hold, and the worker dead-letters what it cannot apply.
fn is_stripe_id(id: &str) -> bool {
    id.len() <= MAX_ID_LEN
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("body is not a JSON Stripe event: {0}")]
    NotAnEvent(String),
    #[error("`object` is not \"event\"")]
    NotEventObject,
    #[error("event id is not a Stripe event id")]
    InvalidId,
    #[error("event type is empty or too long")]
    InvalidType,
    /// Outside 1970-01-01 … 9999-12-31: no Stripe event, and PostgreSQL refuses some of it.
    #[error("`created` is not a time Stripe can have sent")]
    InvalidCreated,
    /// PostgreSQL text cannot hold U+0000, and Stripe never sends it.
    #[error("`{0}` holds a NUL character")]
    NulCharacter(&'static str),
}

#[derive(Deserialize)]
struct Raw<'a> {
    id: String,
    #[serde(borrow)]
    object: Option<&'a str>,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    livemode: bool,
    #[serde(default)]
    account: Option<String>,
    // `data.object` must be present for the event to be applicable at all.
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: ObjectId,
}

/// `data.object`, read in the same pass as the rest of the envelope for its `id`, its
/// `object` and its `customer` alone: string values, else nothing (an object without them, or a
/// `data.object` that is no object). Everything else in it is skipped, not kept.
#[derive(Default)]
struct ObjectId {
    id: Option<String>,
    customer: Option<String>,
    is_customer: bool,
}

impl ObjectId {
    fn customer_id(&self) -> Option<String> {
        if self.is_customer {
            self.id.clone()
        } else {
            self.customer.clone()
        }
    }
}

/// `customer` as Stripe sends it: an id, an expanded object with an id, or null.
struct CustomerRef(Option<String>);

impl<'de> Deserialize<'de> for CustomerRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(id) => Some(id),
            serde_json::Value::Object(mut expanded) => match expanded.remove("id") {
                Some(serde_json::Value::String(id)) => Some(id),
                _ => None,
            },
            _ => None,
        }))
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectIdVisitor)
    }
}

struct ObjectIdVisitor;

impl<'de> serde::de::Visitor<'de> for ObjectIdVisitor {
    type Value = ObjectId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Stripe object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ObjectId, A::Error> {
        use serde::de::IgnoredAny;
        let mut fields = ObjectId::default();
        while let Some(key) = map.next_key::<ObjectKey>()? {
            match key {
                ObjectKey::Id => match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(value) => fields.id = Some(value),
                    _ => fields.id = None,
                },
                ObjectKey::Object => {
                    fields.is_customer = map.next_value::<serde_json::Value>()? == "customer";
                }
                ObjectKey::Customer => fields.customer = map.next_value::<CustomerRef>()?.0,
                ObjectKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ObjectId, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(ObjectId::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<ObjectId, E> {
        Ok(ObjectId::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<ObjectId, E> {
        Ok(ObjectId::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<ObjectId, E> {
        Ok(ObjectId::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<ObjectId, E> {
        Ok(ObjectId::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<ObjectId, E> {
        Ok(ObjectId::default())
    }

    fn visit_unit<E>(self) -> Result<ObjectId, E> {
        Ok(ObjectId::default())
    }
}

/// A key of `data.object`, compared without being copied.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum ObjectKey {
    Id,
    Object,
    Customer,
    #[serde(other)]
    Other,
}

impl Envelope {
    /// Reads the envelope from the raw body. Other fields are not parsed here.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let raw: Raw<'_> =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotAnEvent(e.to_string()))?;
        if raw.object.is_some_and(|o| o != "event") {
            return Err(EnvelopeError::NotEventObject);
        }
        if raw.event_type.is_empty() || raw.event_type.len() > 255 {
            return Err(EnvelopeError::InvalidType);
        }
        if !(0..=LAST_CREATED).contains(&raw.created) {
            return Err(EnvelopeError::InvalidCreated);
        }
        for (field, value) in [
            ("type", Some(&raw.event_type)),
            ("api_version", raw.api_version.as_ref()),
            ("account", raw.account.as_ref()),
            ("data.object.id", raw.data.object.id.as_ref()),
            ("data.object.customer", raw.data.object.customer.as_ref()),
        ] {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(EnvelopeError::NulCharacter(field));
            }
        }
        Ok(Self {
            customer_id: raw.data.object.customer_id().filter(|id| is_stripe_id(id)),
            object_id: raw.data.object.id.filter(|id| is_stripe_id(id)),
            id: EventId::parse(raw.id)?,
            event_type: raw.event_type,
            created: raw.created,
            api_version: raw.api_version,
            livemode: raw.livemode,
            account: raw.account,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(event_type: &str, account: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "object": "event",
            "type": event_type,
            "created": 1_700_000_000,
            "livemode": false,
            "account": account,
            "data": { "object": { "id": "cus_1" } }
        }))
        .expect("JSON")
    }

    #[test]
    fn an_envelope_is_read_from_the_body() {
        let envelope = Envelope::parse(&body("customer.created", "acct_1")).expect("an event");
        assert_eq!(envelope.event_type, "customer.created");
        assert_eq!(envelope.account.as_deref(), Some("acct_1"));
        assert_eq!(envelope.object_id.as_deref(), Some("cus_1"));
    }

    #[test]
    fn created_must_be_a_time_stripe_can_have_sent() {
        let mut event: serde_json::Value =
            serde_json::from_slice(&body("customer.created", "acct_1")).expect("JSON");
        for (created, accepted) in [
            (-1_i64, false),
            (-210_866_803_201, false),
            (0, true),
            (LAST_CREATED, true),
            (LAST_CREATED + 1, false),
        ] {
            event["created"] = created.into();
            let body = serde_json::to_vec(&event).expect("JSON");
            let parsed = Envelope::parse(&body).map(|e| e.created);
            if accepted {
                assert_eq!(parsed, Ok(created));
            } else {
                assert_eq!(parsed, Err(EnvelopeError::InvalidCreated), "{created}");
            }
        }
    }

    #[test]
    fn an_object_without_a_string_id_has_no_object_id() {
        let mut event: serde_json::Value =
            serde_json::from_slice(&body("customer.created", "acct_1")).expect("JSON");
        for object in [
            serde_json::json!({ "id": 7 }),
            serde_json::json!({}),
            serde_json::json!("cus_1"),
        ] {
            event["data"]["object"] = object;
            let body = serde_json::to_vec(&event).expect("JSON");
            assert_eq!(Envelope::parse(&body).expect("an event").object_id, None);
        }
    }

    #[test]
    fn a_nul_character_in_a_stored_text_field_is_refused() {
        assert_eq!(
            Envelope::parse(&body("customer.\u{0}created", "acct_1")).map(|e| e.id),
            Err(EnvelopeError::NulCharacter("type"))
        );
        assert_eq!(
            Envelope::parse(&body("customer.created", "acct_\u{0}")).map(|e| e.id),
            Err(EnvelopeError::NulCharacter("account"))
        );
        let mut event: serde_json::Value =
            serde_json::from_slice(&body("customer.created", "acct_1")).expect("JSON");
        event["data"]["object"]["id"] = "cus_\u{0}1".into();
        let body = serde_json::to_vec(&event).expect("JSON");
        assert_eq!(
            Envelope::parse(&body).map(|e| e.id),
            Err(EnvelopeError::NulCharacter("data.object.id"))
        );
    }

    #[test]
    fn an_id_longer_than_stripe_makes_is_not_kept_as_object_or_customer() {
        let mut event: serde_json::Value =
            serde_json::from_slice(&body("invoice.paid", "acct_1")).expect("JSON");
        let long = format!("in_{}", "x".repeat(MAX_ID_LEN));
        event["data"]["object"] = serde_json::json!({
            "object": "invoice", "id": long, "customer": format!("cus_{}", "y".repeat(300)),
        });
        let body = serde_json::to_vec(&event).expect("JSON");
        let envelope = Envelope::parse(&body).expect("still an event");
        assert_eq!((envelope.object_id, envelope.customer_id), (None, None));

        event["data"]["object"]["id"] = "x".repeat(MAX_ID_LEN).into();
        let body = serde_json::to_vec(&event).expect("JSON");
        assert_eq!(
            Envelope::parse(&body)
                .expect("an event")
                .object_id
                .map(|id| id.len()),
            Some(MAX_ID_LEN)
        );
    }

    #[test]
    fn the_object_id_is_read_whatever_else_the_object_holds() {
        let mut event: serde_json::Value =
            serde_json::from_slice(&body("invoice.paid", "acct_1")).expect("JSON");
        event["data"]["object"] = serde_json::json!({
            "object": "invoice", "lines": { "data": [{ "id": "il_1" }] },
            "metadata": { "id": "not this one" }, "amount": 5.5, "paid": true,
            "discount": null, "id": "in_\u{e9}\"1", "tags": ["a", 1],
        });
        let body = serde_json::to_vec(&event).expect("JSON");
        assert_eq!(
            Envelope::parse(&body)
                .expect("an event")
                .object_id
                .as_deref(),
            Some("in_\u{e9}\"1")
        );
    }
}
