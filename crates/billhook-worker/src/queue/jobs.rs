//! Every job's argument, with its queue and kind: the job kinds of the worker. Arguments
//! carry ids, never payloads (the rows they name are the source of truth), and are versioned
//! enums (`#[serde(tag = "v")]`) so that a job written by an older release still decodes.
//! How many attempts a job gets is each feature's setting, given when it is pushed
//! ([`super::push`]); the queue is fixed by the type.

use billhook_core::jobs::Job;
pub use billhook_core::jobs::ProcessEvent;
use serde::{Deserialize, Serialize};

/// Send one stored email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum SendEmail {
    #[serde(rename = "1")]
    V1 {
        email_id: String,
        event_id: Option<String>,
    },
}

impl Job for SendEmail {
    const QUEUE: &'static str = "billhook.send_email";
    const KIND: &'static str = "send_email";
}

/// Deliver one notice. The body stays in `app_notifications`. `event_id` is absent for a
/// notice no Stripe event caused (an alert's): a worker older than alerts cannot decode such a
/// job and dead-letters it, to be requeued once every worker is upgraded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum NotifyApp {
    #[serde(rename = "1")]
    V1 {
        notification_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<String>,
    },
}

impl NotifyApp {
    pub fn new(notification_id: String, event_id: Option<String>) -> Self {
        Self::V1 {
            notification_id,
            event_id,
        }
    }

    pub fn notification_id(&self) -> &str {
        match self {
            Self::V1 {
                notification_id, ..
            } => notification_id,
        }
    }

    pub fn event_id(&self) -> Option<&str> {
        match self {
            Self::V1 { event_id, .. } => event_id.as_deref(),
        }
    }
}

impl Job for NotifyApp {
    const QUEUE: &'static str = "billhook.notify_app";
    const KIND: &'static str = "notify_app";
}

/// Run one step of a dunning run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum DunningStep {
    #[serde(rename = "1")]
    V1 { run_id: String, step: u32 },
}

impl Job for DunningStep {
    const QUEUE: &'static str = "billhook.dunning_step";
    const KIND: &'static str = "dunning_step";
}

/// Post one alert message to the Slack-compatible URL. The body stays in `alert_posts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum PostAlert {
    #[serde(rename = "1")]
    V1 { post_id: String },
}

impl Job for PostAlert {
    const QUEUE: &'static str = "billhook.post_alert";
    const KIND: &'static str = "post_alert";
}

/// Every kind, for the gauges that show a kind with nothing to count as 0.
pub const KINDS: [&str; 5] = [
    ProcessEvent::KIND,
    NotifyApp::KIND,
    SendEmail::KIND,
    DunningStep::KIND,
    PostAlert::KIND,
];

/// Every queue, for the gauges that show empty queues as 0.
pub const QUEUES: [&str; 5] = [
    ProcessEvent::QUEUE,
    NotifyApp::QUEUE,
    SendEmail::QUEUE,
    DunningStep::QUEUE,
    PostAlert::QUEUE,
];
