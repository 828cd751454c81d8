-- One row per Stripe event id: the stored event is the source of truth. The job that applies
-- it carries only the id, so everything needed to (re)apply it lives here.
CREATE TABLE webhook_events (
    id              text        PRIMARY KEY,            -- evt_…
    type            text        NOT NULL,
    api_version     text,                               -- NULL for events older than versioning
    livemode        boolean     NOT NULL,
    account         text,                               -- connected account (Connect)
    created         timestamptz NOT NULL,               -- event time: ordering, never rejection
    signed_at       timestamptz NOT NULL,               -- t= of the delivery that was stored
    received_at     timestamptz NOT NULL DEFAULT now(),
    body            bytea       NOT NULL,               -- the raw body, byte for byte as signed
    headers         jsonb       NOT NULL DEFAULT '{}',  -- selected request headers
    secret_label    text        NOT NULL,               -- which configured secret verified it
    status          text        NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'processing', 'applied', 'ignored', 'stale', 'failed', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    applied_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_events_status_idx ON webhook_events (status) WHERE status <> 'applied';
CREATE INDEX webhook_events_type_idx ON webhook_events (type);
CREATE INDEX webhook_events_received_at_idx ON webhook_events (received_at);
