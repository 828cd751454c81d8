-- Notices to the host application (an outbox). A row is written in the transaction that
-- applied the Stripe event causing it, together with its NotifyApp job; the job POSTs `body`
-- signed per Standard Webhooks, with `id` as the webhook-id, so the application can drop a
-- repeated delivery. `dedupe_key` makes a replayed event add no second notice.
CREATE TABLE app_notifications (
    id            text        PRIMARY KEY,           -- ntf_<ULID>
    type          text        NOT NULL,              -- e.g. subscription.past_due
    dedupe_key    text        NOT NULL UNIQUE,
    event_id      text        NOT NULL,              -- the Stripe event that caused it
    body          jsonb       NOT NULL,              -- {"type", "timestamp", "data"}
    -- pending: a job will deliver it; skipped: no URL was configured, nothing is sent;
    -- dead: its job ran out of attempts (see dead_letters).
    status        text        NOT NULL
        CHECK (status IN ('pending', 'delivered', 'skipped', 'dead')),
    attempts      integer     NOT NULL DEFAULT 0,    -- requests sent
    last_error    text,
    last_status   integer,                           -- HTTP status of the last answer
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);

CREATE INDEX app_notifications_event_idx ON app_notifications (event_id);
CREATE INDEX app_notifications_undelivered_idx ON app_notifications (created_at)
    WHERE status IN ('pending', 'dead');
