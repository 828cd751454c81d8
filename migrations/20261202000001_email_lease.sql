-- A SendEmail run holds the email until this time while it talks to the SMTP server, so that a
-- second run of the same job (apalis re-enqueues the jobs of a worker whose heartbeat lapsed,
-- even when that worker is alive and only slow) waits instead of sending the message again.
ALTER TABLE emails ADD COLUMN sending_until timestamptz;
