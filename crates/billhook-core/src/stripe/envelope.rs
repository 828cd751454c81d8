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
    #[allow(dead_code)]
    data: RawData<'a>,
}

#[derive(Deserialize)]
struct RawData<'a> {
    #[allow(dead_code)]
    #[serde(borrow)]
    object: &'a serde_json::value::RawValue,
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
        Ok(Self {
            id: EventId::parse(raw.id)?,
            event_type: raw.event_type,
            created: raw.created,
            api_version: raw.api_version,
            livemode: raw.livemode,
            account: raw.account,
        })
    }
}
