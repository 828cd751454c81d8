//! How a job fails: what every handler returns, and what the runner decides from it.

use billhook_core::db::errors::{self, Class};
use billhook_core::jobs::EnqueueError;

/// What a handler's failure means for the job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A retry may cure it: database, SMTP or HTTP trouble.
    #[error("{}", describe(.0))]
    Retryable(anyhow::Error),
    /// No retry will: a payload that cannot be read, a state that cannot be reached.
    #[error("{}", describe(.0))]
    Permanent(anyhow::Error),
}

/// The error and its causes, `: `-separated like `{:#}`, without a cause its parent already
/// quotes (sqlx's "error returned from database: X" has X as its source, which `{:#}` would
/// print twice).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.ends_with(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_its_parent_quotes_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("refused")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: {0}")]
        struct Outer(#[source] Inner);
        let error = anyhow::Error::new(Outer(Inner)).context("commit");
        assert_eq!(
            JobError::Retryable(error).to_string(),
            "commit: error returned from database: refused"
        );
        let plain = anyhow::anyhow!("no SMTP").context("sending");
        assert_eq!(JobError::Permanent(plain).to_string(), "sending: no SMTP");
    }
}
