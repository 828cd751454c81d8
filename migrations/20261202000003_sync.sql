-- The first sync of an existing Stripe account (`billhook-worker sync`): one row per run, and
-- per run and object type how far its listing got. A page's objects, their audit rows and the
-- progress row commit together, so a run interrupted anywhere resumes after its last page.
-- Mirror rows a sync writes name `sync:<run id>` in `last_event_id`.
CREATE TABLE sync_runs (
    id             bigserial   PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    types          text[]      NOT NULL,             -- in the order they are listed
    created_since  timestamptz,                      -- created[gte] of every listing; NULL: all
    outcome        text        NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'succeeded', 'failed')),
    error          text
);
CREATE INDEX sync_runs_started_idx ON sync_runs (started_at DESC);

CREATE TABLE sync_progress (
    run_id       bigint      NOT NULL REFERENCES sync_runs (id),
    object_type  text        NOT NULL,
    cursor       text,                               -- the last object id committed; NULL: none yet
    fetched      bigint      NOT NULL DEFAULT 0,
    written      bigint      NOT NULL DEFAULT 0,
    kept         bigint      NOT NULL DEFAULT 0,     -- listed, but the mirror already had a newer version
    done         boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, object_type)
);
