-- Indexes for the console's lists and pages (issue 14): each serves one query of
-- crates/billhook-console/src/query/, newest first with a keyset on (time, id). None is on
-- webhook_events (the receiver's insert path); those are in 20261203000003 and 20261203000004.

-- customers.rs: the list, and the email filter.
CREATE INDEX customers_updated_idx ON customers (updated_at DESC, id DESC);
CREATE INDEX customers_email_idx ON customers (lower(email)) WHERE email IS NOT NULL;
-- customers.rs: a customer's invoices, payments, orders and notices, newest first.
CREATE INDEX invoices_customer_idx ON invoices (customer_id, updated_at DESC);
CREATE INDEX payments_customer_idx ON payments (customer_id, updated_at DESC);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at DESC);
CREATE INDEX app_notifications_customer_idx ON app_notifications ((body->'data'->>'customer'), created_at DESC)
    WHERE body->'data'->>'customer' IS NOT NULL;
-- customers.rs: a customer's emails (by address); emails.rs: the recipient filter.
CREATE INDEX emails_recipient_idx ON emails (lower(recipient), created_at DESC) WHERE recipient IS NOT NULL;

-- orders.rs: the list (any status, or one).
CREATE INDEX orders_created_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_created_idx ON orders (status, created_at DESC, id DESC);
-- events.rs / orders.rs: the ledger entries of an event, of an order.
CREATE INDEX ledger_entries_event_idx ON ledger_entries (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX ledger_entries_order_idx ON ledger_entries (order_id) WHERE order_id IS NOT NULL;

-- emails.rs: the list, by status, by event; a dunning run's emails (source `dun_…:step`).
CREATE INDEX emails_created_idx ON emails (created_at DESC, id DESC);
CREATE INDEX emails_status_created_idx ON emails (status, created_at DESC, id DESC);
CREATE INDEX emails_event_idx ON emails (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX emails_source_idx ON emails (source text_pattern_ops);

-- notices.rs: the list, by status.
CREATE INDEX app_notifications_created_idx ON app_notifications (created_at DESC, id DESC);
CREATE INDEX app_notifications_status_created_idx ON app_notifications (status, created_at DESC, id DESC);

-- dunning.rs: the list, by state, by customer; events.rs: the runs an event opened.
CREATE INDEX dunning_runs_started_idx ON dunning_runs (started_at DESC, id DESC);
CREATE INDEX dunning_runs_state_started_idx ON dunning_runs (state, started_at DESC, id DESC);
CREATE INDEX dunning_runs_customer_idx ON dunning_runs (customer_id, started_at DESC);
CREATE INDEX dunning_runs_event_idx ON dunning_runs (event_id);

-- dead_letters: the list by kind; the dead letter of an email or a notice.
CREATE INDEX dead_letters_kind_dead_at_idx ON dead_letters (kind, dead_at DESC, job_id DESC);
CREATE INDEX dead_letters_email_idx ON dead_letters ((argument->>'email_id')) WHERE kind = 'send_email';
CREATE INDEX dead_letters_notice_idx ON dead_letters ((argument->>'notification_id')) WHERE kind = 'notify_app';
