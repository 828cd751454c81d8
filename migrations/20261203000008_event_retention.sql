-- Data retention (issue 16, crates/billhook-worker/src/retention/). A finished event's body and
-- headers are cleared after BILLHOOK_EVENT_RETENTION and `pruned_at` says when; the row (its
-- id) stays until BILLHOOK_EVENT_ID_RETENTION, so a late redelivery is still a duplicate. A
-- nullable column without a default: adding it rewrites nothing, and older binaries ignore it.
ALTER TABLE webhook_events ADD COLUMN pruned_at timestamptz;

-- How far the body pruning has walked, in (received_at, id) order: each pass reads only rows
-- it has not seen.
CREATE TABLE retention_state (
    id               boolean     PRIMARY KEY DEFAULT true CHECK (id),
    events_until     timestamptz NOT NULL,
    events_until_id  text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
