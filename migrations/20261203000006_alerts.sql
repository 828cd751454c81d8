-- Alerts (issue 15). The worker evaluates its rules every BILLHOOK_ALERT_INTERVAL, one
-- evaluation at a time across every process (an advisory lock, crate::schedule). A rule that
-- fires opens an incident; while it keeps firing the incident stays open (reminders at most
-- every BILLHOOK_ALERT_REMIND unless acknowledged); once the rule has been clear for
-- BILLHOOK_ALERT_RESOLVE_AFTER the incident is resolved. New tables only: older binaries ignore
-- them.
CREATE TABLE alert_incidents (
    id               text        PRIMARY KEY,              -- alr_<ULID>
    rule             text        NOT NULL,                 -- event_failures, dead_letters, …
    state            text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    threshold        double precision NOT NULL,
    value            double precision NOT NULL,            -- the figure at the last evaluation that fired
    peak             double precision NOT NULL,            -- the highest figure while open
    detail           jsonb       NOT NULL,                 -- what the messages show: samples, by reason, …
    opened_at        timestamptz NOT NULL,
    last_fired_at    timestamptz NOT NULL,
    clear_since      timestamptz,                          -- first clear evaluation since it last fired
    last_notified_at timestamptz NOT NULL,                 -- opened or last reminded
    acknowledged_at  timestamptz,
    acknowledged_by  text,                                 -- a console token's label, or the CLI's actor
    resolved_at      timestamptz
);
-- One open incident per rule: two evaluations racing cannot open two.
CREATE UNIQUE INDEX alert_incidents_open_idx ON alert_incidents (rule) WHERE state = 'open';
CREATE INDEX alert_incidents_opened_idx ON alert_incidents (opened_at DESC, id DESC);

-- An incident's history: each row is one thing that happened to it, and the messages a
-- transition sends (opened, reminded, resolved) are keyed on the row, so each is written once.
CREATE TABLE alert_history (
    id           bigserial   PRIMARY KEY,
    incident_id  text        NOT NULL REFERENCES alert_incidents (id),
    action       text        NOT NULL CHECK (action IN ('opened', 'reminded', 'acknowledged', 'resolved')),
    value        double precision,
    actor        text,                                     -- who acknowledged
    at           timestamptz NOT NULL
);
CREATE INDEX alert_history_incident_idx ON alert_history (incident_id, id);

-- Posts to a Slack-compatible incoming webhook (BILLHOOK_ALERT_SLACK_URL), delivered by
-- post_alert jobs; emails go through `emails` and the application's notices through
-- `app_notifications`, each with its own retries, so a channel that is down holds up no other.
CREATE TABLE alert_posts (
    id            text        PRIMARY KEY,                 -- alp_<ULID>
    history_id    bigint      NOT NULL UNIQUE REFERENCES alert_history (id),
    body          jsonb       NOT NULL,                    -- the message as posted
    status        text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts      integer     NOT NULL DEFAULT 0,
    last_status   integer,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);

-- When each scheduled task last ran, for tasks that must run once per period however many
-- workers tick (alert evaluation).
CREATE TABLE scheduled_runs (
    task         text        PRIMARY KEY,
    last_run_at  timestamptz NOT NULL
);

-- An alert's notice to the application is caused by no Stripe event.
ALTER TABLE app_notifications ALTER COLUMN event_id DROP NOT NULL;

-- The rules' windows: failures and dead letters by time.
CREATE INDEX job_failures_failed_at_idx ON job_failures (failed_at);
