//! The event as handlers see it: the parts of a stored event they read, what applying it did,
//! and the audit entries it produced.

use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;

use super::audit::AuditEntry;
use super::inbox::StoredEvent;
use crate::queue::JobError;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// An older event than the state already stored: recorded, not applied.
    Stale,
    /// No handler for this type.
    Ignored,
}

/// The parts of a stored event handlers read, and the audit entries applying it produced.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    #[serde(default)]
    pub api_version: Option<String>,
    pub data: EventData,
    /// Filled by [`Event::audit`], written by `inbox::finish`.
    #[serde(skip)]
    audit: Mutex<Vec<AuditEntry>>,
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

    /// Records a state change applying this event made. The entries go to `audit_log` in the
    /// statement that marks the event finished (`inbox::finish`): in the same transaction as
    /// the change, without a round trip of their own.
    pub fn audit(&self, entity: &str, entity_id: &str, action: &str, detail: Value) {
        self.audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(AuditEntry {
                entity: entity.to_owned(),
                entity_id: entity_id.to_owned(),
                action: action.to_owned(),
                detail,
            });
    }

    /// The audit entries recorded so far, in order; they are handed over once.
    pub fn take_audit(&self) -> Vec<AuditEntry> {
        std::mem::take(&mut *self.audit.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The Stripe object the event is about: events for one object are applied one at a time.
    pub fn object_id(&self) -> Option<&str> {
        self.data.object.get("id").and_then(Value::as_str)
    }
}
