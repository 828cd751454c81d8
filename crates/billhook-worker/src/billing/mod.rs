//! Applying an event to the billing mirror and the business state: the dispatch from event
//! type to handler. Each handler runs inside the ProcessEvent transaction and writes nothing
//! outside it.

pub mod customer;

use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;

use crate::events::StoredEvent;
use crate::runner::JobError;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// An older event than the state already stored: recorded, not applied.
    Stale,
    /// No handler for this type.
    Ignored,
}

/// The parts of a stored event handlers read.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: Value,
}

impl Event {
    pub fn parse(stored: &StoredEvent) -> Result<Self, JobError> {
        serde_json::from_slice(&stored.body).map_err(|e| {
            JobError::Permanent(anyhow::Error::new(e).context("the stored event cannot be read"))
        })
    }

    /// The Stripe object the event is about: events for one object are applied one at a time.
    pub fn object_id(&self) -> Option<&str> {
        self.data.object.get("id").and_then(Value::as_str)
    }
}

pub async fn apply(conn: &mut PgConnection, event: &Event) -> Result<Applied, JobError> {
    match event.event_type.as_str() {
        "customer.created" | "customer.updated" | "customer.deleted" => {
            customer::apply(conn, event).await
        }
        _ => Ok(Applied::Ignored),
    }
}
