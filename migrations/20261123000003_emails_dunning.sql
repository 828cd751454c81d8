-- Every email the system decided to send. One per (source, template): a redelivered or
-- re-applied event finds its email already there and sends nothing more.
CREATE TABLE emails (
    id           text        PRIMARY KEY,            -- eml_<ulid>; also the Message-ID's left part
    template     text        NOT NULL,
    source       text        NOT NULL,               -- what it is about: order, payment, invoice, run step…
    recipient    text,                               -- NULL: no address known (status skipped)
    subject      text,                               -- as rendered when sent
    data         jsonb       NOT NULL,               -- the template's variables
    event_id     text,                               -- the Stripe event that caused it, if any
    status       text        NOT NULL CHECK (status IN ('pending', 'sent', 'skipped', 'dead')),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    message_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    UNIQUE (source, template)
);
CREATE INDEX emails_status_idx ON emails (status) WHERE status <> 'sent';

-- One dunning run per unpaid subscription invoice.
CREATE TABLE dunning_runs (
    id               text        PRIMARY KEY,        -- dun_<ulid>
    invoice_id       text        NOT NULL UNIQUE,
    subscription_id  text        NOT NULL,
    customer_id      text        NOT NULL,
    state            text        NOT NULL DEFAULT 'active'
                       CHECK (state IN ('active', 'recovered', 'canceled', 'stopped')),
    steps_done       integer     NOT NULL DEFAULT 0, -- 0..4: payment failed, reminder, final warning, cancel
    started_at       timestamptz NOT NULL,           -- the first failure (its event time)
    next_step_at     timestamptz,                    -- NULL once the run is over
    stop_reason      text,
    history          jsonb       NOT NULL DEFAULT '[]', -- [{step, action, at}]
    event_id         text        NOT NULL,           -- the failure that opened it
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dunning_runs_state_idx ON dunning_runs (state);
