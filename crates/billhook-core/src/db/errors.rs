//! What a database error means for the caller: the database is (for now) out of reach, the
//! data itself can never be written, or neither. The receiver answers 503 for the first, so
//! Stripe retries; the worker retries the first and dead-letters the second at once.
//!
//! The classes follow PostgreSQL's SQLSTATE codes (appendix A of its manual). Everything a
//! restart, a failover, a terminated backend, an exhausted server or a lost network can
//! produce is `Unavailable`; values out of range, malformed text, a NUL byte, an index entry
//! too large and the like are `Permanent`. A unique or foreign-key violation is neither: two
//! transactions racing, or events arriving out of order, cause them, and a retry can pass.

/// The meaning of a database error for the one who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The database could not do it now; the same request later may succeed.
    Unavailable,
    /// The data can never be written as it is: retrying only repeats the failure.
    Permanent,
    /// Anything else (a bug, a race, a missing table): not known to pass or fail again.
    Other,
}

/// Classifies an sqlx error.
pub fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Class::Unavailable,
        sqlx::Error::Database(db) => db.code().map_or(Class::Other, |c| classify_sqlstate(&c)),
        _ => Class::Other,
    }
}

/// Classifies a five-character SQLSTATE.
pub fn classify_sqlstate(code: &str) -> Class {
    match code {
        // A standby after a failover, a lock wait that gave up, an object busy elsewhere.
        "25006" | "55P03" | "55006" => return Class::Unavailable,
        // Shut down by the administrator, crashed, starting up; a cancelled statement
        // (statement_timeout, pg_cancel_backend).
        "57P01" | "57P02" | "57P03" | "57014" => return Class::Unavailable,
        // Not-null and check violations, exclusion: the row itself is wrong.
        "23502" | "23514" | "23P01" => return Class::Permanent,
        _ => {}
    }
    match code.get(..2) {
        // connection_exception, transaction_rollback (serialization, deadlock),
        // insufficient_resources (disk, memory, too many connections), system_error (I/O).
        Some("08" | "40" | "53" | "58") => Class::Unavailable,
        // data_exception (out of range, invalid text, NUL byte), program_limit_exceeded
        // (index row too large, statement too complex).
        Some("22" | "54") => Class::Permanent,
        _ => Class::Other,
    }
}

/// True when a retry may cure the error because the database was out of reach.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    classify(error) == Class::Unavailable
}

/// True when no retry can write the data as it is.
pub fn is_permanent(error: &sqlx::Error) -> bool {
    classify(error) == Class::Permanent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_connection_dies_is_unavailability() {
        for code in [
            "57P01", // terminating connection due to administrator command
            "57P02", "57P03", "57014", "08000", "08003", "08006", "08001", "08004", "40001",
            "40P01", "53000", "53100", "53200", "53300", "58000", "58030", "25006", "55P03",
        ] {
            assert_eq!(classify_sqlstate(code), Class::Unavailable, "{code}");
        }
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Protocol("unexpected end of stream".into()),
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
        ] {
            assert!(is_unavailable(&error), "{error}");
            assert!(!is_permanent(&error), "{error}");
        }
    }

    #[test]
    fn data_that_cannot_be_written_is_permanent() {
        for code in [
            "54000", // index row size exceeds btree maximum
            "22001", "22003", "22021", "22P02", "22P05", "23502", "23514", "23P01",
        ] {
            assert_eq!(classify_sqlstate(code), Class::Permanent, "{code}");
        }
    }

    #[test]
    fn races_and_unknown_errors_are_neither() {
        for code in [
            "23505", "23503", "42P01", "42703", "XX000", "P0001", "", "5",
        ] {
            assert_eq!(classify_sqlstate(code), Class::Other, "{code:?}");
        }
        let decode = sqlx::Error::Decode("bad".into());
        assert_eq!(classify(&decode), Class::Other);
        assert_eq!(classify(&sqlx::Error::RowNotFound), Class::Other);
    }
}
