-- Where each stored event came from: a signed webhook delivery, or Stripe's Events API
-- (reconciliation recovered it). A recovered event had no delivery, so it has no signature
-- time and no matching secret; a webhook delivery still must have both. The constraints are
-- added NOT VALID and validated after, which scans the table without blocking ingest.
ALTER TABLE webhook_events ADD COLUMN origin text NOT NULL DEFAULT 'webhook';
ALTER TABLE webhook_events ALTER COLUMN signed_at DROP NOT NULL;
ALTER TABLE webhook_events ALTER COLUMN secret_label DROP NOT NULL;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_origin_check
    CHECK (origin IN ('webhook', 'events_api')) NOT VALID;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_delivery_check
    CHECK (origin <> 'webhook' OR (signed_at IS NOT NULL AND secret_label IS NOT NULL)) NOT VALID;
ALTER TABLE webhook_events VALIDATE CONSTRAINT webhook_events_origin_check;
ALTER TABLE webhook_events VALIDATE CONSTRAINT webhook_events_delivery_check;

-- Reconciliation's watermark: every handled event Stripe created before it is stored. One row;
-- absent until the first run.
CREATE TABLE reconcile_state (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    watermark   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every reconciliation run, scheduled or by command. A run whose process died stays
-- `running` until the next run marks it `interrupted`.
CREATE TABLE reconcile_runs (
    id                  bigserial   PRIMARY KEY,
    trigger             text        NOT NULL CHECK (trigger IN ('schedule', 'command')),
    dry_run             boolean     NOT NULL DEFAULT false,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    outcome             text        NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'interrupted')),
    since               timestamptz NOT NULL,       -- created[gte] of the listing
    until               timestamptz NOT NULL,       -- created[lt] of the listing
    covered_until       timestamptz,                -- where the watermark got to in this run
    pages               integer     NOT NULL DEFAULT 0,
    events_seen         integer     NOT NULL DEFAULT 0,
    events_recovered    integer     NOT NULL DEFAULT 0,
    recovered_sample    text[]      NOT NULL DEFAULT '{}',  -- the first recovered event ids
    problems            text[]      NOT NULL DEFAULT '{}',  -- horizon passed, endpoint disabled, …
    endpoint            jsonb,                              -- the webhook endpoint as Stripe has it
    error               text
);
CREATE INDEX reconcile_runs_started_idx ON reconcile_runs (started_at DESC);
