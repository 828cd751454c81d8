-- The console benchmark's database: :events webhook events over the last 60 days (about
-- 16,700 a day at 1,000,000) for :customers customers, with the rows a real install of that
-- size holds: failures and dead letters, audit entries, the billing mirror, orders and the
-- ledger, emails, notices, dunning runs, reconciliation runs and the job table. Set-based
-- (generate_series), so a million events take about a minute, not an hour.
--
-- psql -v events=1000000 -v customers=50000 -f bench/console-seed.sql DATABASE
-- Shares (per event): 95.9% applied, 1% ignored, 1% stale, 0.5% retrying (failed), 0.5% dead
-- and 1.1% still received; 1 audit entry per applied event; an order for 5% and an email for 10%
-- of events; a notice for 5%.
\set ON_ERROR_STOP on
-- -v days_ago=N moves every event N days further back (bench/retention.sh: past the retention).
\if :{?days_ago}
\else
\set days_ago 0
\endif
SET synchronous_commit = off;

-- Customers, each with a subscription (one item), two invoices, two payments and a card.
INSERT INTO customers (id, email, name, deleted, livemode, object, stripe_version, last_event_id, updated_at)
SELECT 'cus_b' || lpad(c::text, 8, '0'), 'user' || c || '@example.com', 'Customer ' || c,
       c % 97 = 0, false, jsonb_build_object('id', 'cus_b' || lpad(c::text, 8, '0'), 'object', 'customer'),
       now() - (c % 1440) * interval '1 hour', 'evt_seed', now() - (c % 1440) * interval '1 hour'
  FROM generate_series(1, :customers) c;

INSERT INTO subscriptions (id, customer_id, status, status_since, current_period_start, current_period_end,
                           livemode, object, stripe_version, object_time, last_event_id)
SELECT 'sub_b' || lpad(c::text, 8, '0'), 'cus_b' || lpad(c::text, 8, '0'),
       (ARRAY['active', 'active', 'active', 'trialing', 'past_due', 'canceled'])[1 + c % 6],
       now() - (c % 30) * interval '1 day', now() - interval '10 days', now() + interval '20 days',
       false, '{}', now(), 0, 'evt_seed'
  FROM generate_series(1, :customers) c;
INSERT INTO subscription_items (id, subscription_id, price_id, product_id, quantity)
SELECT 'si_b' || lpad(c::text, 8, '0'), 'sub_b' || lpad(c::text, 8, '0'), 'price_b' || (c % 5), 'prod_b' || (c % 5), 1
  FROM generate_series(1, :customers) c;
INSERT INTO invoices (id, customer_id, subscription_id, status, billing_reason, amount_due, amount_paid,
                      amount_remaining, currency, attempt_count, livemode, object, stripe_version, object_time,
                      last_event_id, updated_at)
SELECT 'in_b' || lpad(c::text, 8, '0') || n, 'cus_b' || lpad(c::text, 8, '0'), 'sub_b' || lpad(c::text, 8, '0'),
       CASE WHEN (c + n) % 40 = 0 THEN 'open' ELSE 'paid' END, 'subscription_cycle', 2000,
       CASE WHEN (c + n) % 40 = 0 THEN 0 ELSE 2000 END, CASE WHEN (c + n) % 40 = 0 THEN 2000 ELSE 0 END,
       'usd', 1, false, '{}', now(), 0, 'evt_seed', now() - n * interval '30 days' - (c % 720) * interval '1 hour'
  FROM generate_series(1, :customers) c, generate_series(1, 2) n;
INSERT INTO payments (id, kind, payment_intent_id, customer_id, invoice_id, amount, amount_received, currency,
                      status, livemode, object, stripe_version, object_time, last_event_id, updated_at)
SELECT 'pi_b' || lpad(c::text, 8, '0') || n, 'payment_intent', 'pi_b' || lpad(c::text, 8, '0') || n,
       'cus_b' || lpad(c::text, 8, '0'), 'in_b' || lpad(c::text, 8, '0') || n, 2000, 2000, 'usd', 'succeeded',
       false, '{}', now(), 0, 'evt_seed', now() - n * interval '30 days' - (c % 720) * interval '1 hour'
  FROM generate_series(1, :customers) c, generate_series(1, 2) n;
INSERT INTO payment_methods (id, customer_id, type, card_brand, livemode, object, stripe_version, object_time, last_event_id)
SELECT 'pm_b' || lpad(c::text, 8, '0'), 'cus_b' || lpad(c::text, 8, '0'), 'card', 'visa', false,
       jsonb_build_object('card', jsonb_build_object('brand', 'visa', 'last4', '4242', 'exp_month', 12, 'exp_year', 2030,
                                                     'fingerprint', 'fp' || c)), now(), 0, 'evt_seed'
  FROM generate_series(1, :customers) c;

-- The events. A body of about 1.3 KB, as Stripe's (its ids and amounts vary; the rest is the
-- same text in every event, which lz4 compresses as it compresses Stripe's).
CREATE TEMP TABLE seed_events AS
SELECT g,
       'evt_b' || lpad(g::text, 10, '0') AS id,
       (ARRAY['customer.updated', 'invoice.paid', 'invoice.payment_succeeded', 'payment_intent.succeeded',
              'charge.succeeded', 'checkout.session.completed', 'customer.subscription.updated',
              'invoice.finalized', 'invoice.payment_failed', 'customer.created'])[1 + g % 10] AS type,
       now() - :days_ago * interval '1 day' - (g::float8 / :events) * interval '60 days' AS at,
       'cus_b' || lpad((1 + g % :customers)::text, 8, '0') AS customer,
       CASE WHEN g % 200 = 7 THEN 'dead' WHEN g % 200 = 8 THEN 'failed'
            WHEN g % 100 = 9 THEN 'ignored' WHEN g % 100 = 10 THEN 'stale'
            WHEN g % 90 = 11 THEN 'received' ELSE 'applied' END AS status
  FROM generate_series(1, :events) g;

INSERT INTO webhook_events (id, type, api_version, livemode, account, created, signed_at, received_at, body, headers,
                            secret_label, status, attempts, last_error, applied_at, updated_at, object_id, origin,
                            customer_id)
SELECT id, type, '2026-07-29.dahlia', false, NULL, at, at, at,
       convert_to(jsonb_build_object(
           'id', id, 'object', 'event', 'type', type, 'api_version', '2026-07-29.dahlia',
           'created', extract(epoch FROM at)::bigint, 'livemode', false, 'pending_webhooks', 1,
           'request', jsonb_build_object('id', 'req_' || md5(id), 'idempotency_key', md5(id || 'k')),
           'data', jsonb_build_object('object', jsonb_build_object(
               'id', 'in_b' || lpad((g % 999999)::text, 8, '0'), 'object', 'invoice', 'customer', customer,
               'amount_due', 2000 + g % 5000, 'amount_paid', 2000 + g % 5000, 'currency', 'usd',
               'status', 'paid', 'billing_reason', 'subscription_cycle', 'collection_method', 'charge_automatically',
               'customer_email', 'customer@example.com', 'hosted_invoice_url', 'https://invoice.stripe.com/i/acct_1/' || md5(id),
               'lines', jsonb_build_object('object', 'list', 'has_more', false, 'data', jsonb_build_array(
                   jsonb_build_object('id', 'il_' || md5(id), 'amount', 2000, 'currency', 'usd',
                                      'description', '1 × Pro plan (at $20.00 / month)',
                                      'period', jsonb_build_object('start', 1764000000, 'end', 1766600000)))),
               'metadata', jsonb_build_object('plan', 'pro', 'region', 'eu-west'))))::text, 'UTF8'),
       '{"content-type": "application/json; charset=utf-8", "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}',
       'primary', status,
       CASE status WHEN 'dead' THEN 5 WHEN 'failed' THEN 2 WHEN 'received' THEN 0 ELSE 1 END,
       CASE WHEN status IN ('dead', 'failed') THEN 'the application answered 503 Service Unavailable' END,
       CASE WHEN status IN ('applied', 'ignored', 'stale') THEN at + interval '350 ms' END, at,
       'in_b' || lpad((g % 999999)::text, 8, '0'), 'webhook', customer
  FROM seed_events;

-- Failed attempts of failed and dead events, and the dead letters (a third of them requeued).
INSERT INTO job_failures (job_id, kind, attempt, retryable, error, failed_at, event_id)
SELECT 'job_' || s.id, 'process_event', a, true, 'the application answered 503 Service Unavailable',
       s.at + a * interval '1 minute', s.id
  FROM seed_events s, generate_series(1, 2) a WHERE s.status IN ('dead', 'failed');
INSERT INTO dead_letters (job_id, kind, queue, argument, event_id, error, attempts, history, dead_at, requeued_at)
SELECT 'job_' || id, 'process_event', 'billhook.process_event', jsonb_build_object('v', '1', 'event_id', id), id,
       'the application answered 503 Service Unavailable', 5, '[]', at + interval '1 hour',
       CASE WHEN g % 3 = 0 THEN at + interval '2 hours' END
  FROM seed_events WHERE status = 'dead';

-- One audit entry per applied event.
INSERT INTO audit_log (event_id, entity, entity_id, action, detail, at)
SELECT id, 'invoice', 'in_b' || lpad((g % 999999)::text, 8, '0'), 'paid', '{}', at + interval '350 ms'
  FROM seed_events WHERE status = 'applied';

-- Orders for 5% of events (most paid, some refunded or failed), with ledger credits.
INSERT INTO orders (id, reference, checkout_ref, customer_id, customer_email, amount, currency, status, paid_at,
                    created_by, created_at, updated_at)
SELECT 'ord_b' || lpad(g::text, 10, '0'), 'ref-' || g, 'cs_b' || g, customer, 'customer@example.com', 5000, 'usd',
       (ARRAY['paid', 'paid', 'fulfilled', 'fulfilled', 'fulfilled', 'refunded', 'failed', 'pending'])[1 + (g / 20) % 8],
       at, 'checkout', at, at
  FROM seed_events WHERE g % 20 = 3;
INSERT INTO ledger_entries (customer_id, kind, source, amount, unit, order_id, event_id, created_at)
SELECT customer, 'purchase_credit', 'cs_b' || g, 5000, 'usd', 'ord_b' || lpad(g::text, 10, '0'), id, at
  FROM seed_events WHERE g % 20 = 3;

-- Emails for 10% of events: sent, a few pending and dead.
INSERT INTO emails (id, template, source, recipient, subject, data, event_id, status, attempts, last_error, created_at, sent_at)
SELECT 'eml_b' || lpad(g::text, 10, '0'), (ARRAY['payment_receipt', 'payment_failed', 'order_paid'])[1 + g % 3],
       'src_' || g, 'user' || (1 + g % :customers) || '@example.com', 'Your receipt', '{}', id,
       CASE WHEN g % 500 = 1 THEN 'dead' WHEN g % 50 = 1 THEN 'pending' ELSE 'sent' END,
       CASE WHEN g % 500 = 1 THEN 5 WHEN g % 50 = 1 THEN 1 ELSE 1 END,
       CASE WHEN g % 50 = 1 THEN 'SMTP: connection refused' END, at,
       CASE WHEN g % 50 <> 1 THEN at + interval '2 seconds' END
  FROM seed_events WHERE g % 10 = 1;
INSERT INTO dead_letters (job_id, kind, queue, argument, event_id, error, attempts, history, dead_at)
SELECT 'job_eml_' || g, 'send_email', 'billhook.send_email',
       jsonb_build_object('v', '1', 'email_id', 'eml_b' || lpad(g::text, 10, '0'), 'event_id', id), id,
       'SMTP: connection refused', 5, '[]', at + interval '1 hour'
  FROM seed_events WHERE g % 10 = 1 AND g % 500 = 1;

-- Notices for 5% of events.
INSERT INTO app_notifications (id, type, dedupe_key, event_id, body, status, attempts, last_status, created_at, delivered_at)
SELECT 'ntf_b' || lpad(g::text, 10, '0'), 'invoice.paid', 'invoice.paid:' || g, id,
       jsonb_build_object('type', 'invoice.paid', 'data', jsonb_build_object('customer', customer)),
       CASE WHEN g % 400 = 2 THEN 'dead' WHEN g % 100 = 2 THEN 'pending' ELSE 'delivered' END,
       1, 200, at, CASE WHEN g % 100 <> 2 THEN at + interval '1 second' END
  FROM seed_events WHERE g % 20 = 2;
INSERT INTO dead_letters (job_id, kind, queue, argument, event_id, error, attempts, history, dead_at)
SELECT 'job_ntf_' || g, 'notify_app', 'billhook.notify_app',
       jsonb_build_object('v', '1', 'notification_id', 'ntf_b' || lpad(g::text, 10, '0'), 'event_id', id), id,
       'the application answered 500', 5, '[]', at + interval '1 hour'
  FROM seed_events WHERE g % 20 = 2 AND g % 400 = 2;

-- Dunning runs: one per 500 events, a tenth still active.
INSERT INTO dunning_runs (id, invoice_id, subscription_id, customer_id, state, steps_done, started_at, next_step_at,
                          history, event_id, updated_at)
SELECT 'dun_b' || lpad(g::text, 10, '0'), 'in_dun' || g, 'sub_b' || lpad((1 + g % :customers)::text, 8, '0'), customer,
       (ARRAY['active', 'recovered', 'recovered', 'recovered', 'canceled', 'recovered', 'recovered', 'canceled', 'recovered', 'recovered'])[1 + (g / 500) % 10],
       1 + g % 3, at, CASE WHEN (g / 500) % 10 = 0 THEN at + interval '3 days' END,
       '[{"step": 0, "action": "payment_failed_email"}]', id, at
  FROM seed_events WHERE g % 500 = 5;

INSERT INTO dead_letters (job_id, kind, queue, argument, event_id, error, attempts, history, dead_at)
SELECT 'job_dun_' || id, 'dunning_step', 'billhook.dunning_step', jsonb_build_object('v', '1', 'run_id', id, 'step', 1),
       event_id, 'Stripe API: 503', 5, '[]', started_at + interval '3 days'
  FROM dunning_runs WHERE state = 'canceled' LIMIT 20;

-- Reconciliation every 15 minutes of the last day.
INSERT INTO reconcile_runs (trigger, started_at, finished_at, outcome, since, until, pages, events_seen, events_recovered)
SELECT 'schedule', now() - n * interval '15 minutes', now() - n * interval '15 minutes' + interval '2 seconds',
       'succeeded', now() - n * interval '15 minutes' - interval '20 minutes', now() - n * interval '15 minutes' - interval '2 minutes',
       1, 170, (n % 50 = 0)::int
  FROM generate_series(1, 96) n;

-- The job table: a week of finished jobs (kept for BILLHOOK_JOB_RETENTION) and a small backlog.
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, done_at)
SELECT convert_to(jsonb_build_object('v', '1', 'event_id', id)::text, 'UTF8'), 'job_done_' || g,
       'billhook.process_event', 'Done', 1, 25, at, at + interval '350 ms'
  FROM seed_events WHERE at > now() - interval '7 days';
INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at)
SELECT convert_to(jsonb_build_object('v', '1', 'event_id', id)::text, 'UTF8'), 'job_wait_' || g,
       'billhook.process_event', 'Pending', 0, 25, at
  FROM seed_events WHERE status = 'received' AND at > now() - interval '10 minutes';

DROP TABLE seed_events;
