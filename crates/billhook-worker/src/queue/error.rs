//! How a job fails: what every handler returns, and what the runner decides from it.

use billhook_core::db::errors::{self, Class};
use billhook_core::jobs::EnqueueError;

/// What a handler's failure means for the job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A retry may cure it: database, SMTP or HTTP trouble.
    #[error("{0:#}")]
    Retryable(anyhow::Error),
    /// No retry will: a payload that cannot be read, a state that cannot be reached.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The outcome label of a failed run in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Retryable(_) => "retryable",
            Self::Permanent(_) => "permanent",
        }
    }
}

/// A database error is retried unless it says the data can never be written (a value out of
/// range, an index entry too large): retrying that for hours only delays the dead letter.
impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        if errors::is_permanent(&e) {
            Self::Permanent(e.into())
        } else {
            Self::Retryable(e.into())
        }
    }
}

/// A follow-up job that cannot be enqueued: an argument that does not encode is a bug no retry
/// cures; a failed insert is the database's, and may pass.
impl From<EnqueueError> for JobError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Encode(_) => Self::Permanent(e.into()),
            EnqueueError::Insert(_) if e.database_class() == Class::Permanent => {
                Self::Permanent(e.into())
            }
            EnqueueError::Insert(_) => Self::Retryable(e.into()),
        }
    }
}
