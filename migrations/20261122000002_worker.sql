-- Every failed attempt of any job, so a dead letter can carry its whole history and an
-- operator can see what a job went through while it is still retrying.
CREATE TABLE job_failures (
    id          bigserial   PRIMARY KEY,
    job_id      text        NOT NULL,          -- apalis.jobs.id
    kind        text        NOT NULL,          -- process_event, send_email, …
    attempt     integer     NOT NULL,
    retryable   boolean     NOT NULL,
    error       text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_failures_job_idx ON job_failures (job_id);

-- One row per job that exhausted its retries or failed permanently. Requeue resets the job in
-- place (same id) and appends to requeue_history; a job that dies again updates its row.
CREATE TABLE dead_letters (
    job_id          text        PRIMARY KEY,
    kind            text        NOT NULL,
    queue           text        NOT NULL,
    argument        jsonb       NOT NULL,
    event_id        text,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    history         jsonb       NOT NULL,      -- [{attempt, error, retryable, at}]
    dead_at         timestamptz NOT NULL DEFAULT now(),
    requeued_at     timestamptz,               -- NULL while dead
    requeue_history jsonb       NOT NULL DEFAULT '[]'  -- [{at, by, reason}]
);
CREATE INDEX dead_letters_event_idx ON dead_letters (event_id);
CREATE INDEX dead_letters_dead_at_idx ON dead_letters (dead_at);

-- Append-only: every state change, naming the event that caused it.
CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    event_id    text        NOT NULL,
    entity      text        NOT NULL,          -- customer, order, …
    entity_id   text        NOT NULL,
    action      text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_event_idx ON audit_log (event_id);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);

-- Billing mirror: customers. Never erased: a deletion sets `deleted`.
CREATE TABLE customers (
    id              text        PRIMARY KEY,   -- cus_…
    email           text,
    name            text,
    deleted         boolean     NOT NULL DEFAULT false,
    livemode        boolean     NOT NULL,
    object          jsonb       NOT NULL,      -- the latest full object
    stripe_version  timestamptz NOT NULL,      -- event.created it was last written from
    last_event_id   text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
