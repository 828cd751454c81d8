-- The console's events (issue 14): an event's customer, and its failed attempts.
--
-- `customer_id`: the Stripe customer an event concerns, read by the receiver from the envelope
-- (`data.object` itself when it is a customer, else its `customer`). The console filters a
-- customer's events on it, newest first. NULL for events stored before this migration and for
-- events about no customer. Additive: an older receiver simply leaves it NULL.
ALTER TABLE webhook_events ADD COLUMN customer_id text;
CREATE INDEX webhook_events_customer_idx ON webhook_events (customer_id, received_at DESC, id DESC)
    WHERE customer_id IS NOT NULL;

-- `event_id` of a failed attempt, so an event's page lists every attempt with its error.
-- Written by the worker for jobs about an event (ProcessEvent); NULL otherwise and for older
-- rows (whose attempts stay visible through the event's dead letter history).
ALTER TABLE job_failures ADD COLUMN event_id text;
CREATE INDEX job_failures_event_idx ON job_failures (event_id) WHERE event_id IS NOT NULL;
