-- pgbench script: the database work billhook-receiver does for one new, handled event, and
-- nothing else, as the ceiling the receiver is compared against (bench/receiver.sh).
--
-- One transaction per event, the same two statements as crates/billhook-receiver/src/ingest.rs
-- makes for a batch of one (a lone request):
--   1. INSERT INTO webhook_events … ON CONFLICT (id) DO NOTHING, with a real event body
--      (bytea, a few KB, passed in as -D body=\x<hex>);
--   2. INSERT INTO apalis.jobs through apalis-postgres 1.0.0's own push query
--      (queries/task/sink.sql: one-element arrays, UNNEST), which fires apalis's NOTIFY trigger.
-- Round trips per event here: BEGIN, INSERT, INSERT, COMMIT. Under load the receiver puts the
-- events of concurrent requests into one such transaction (multi-row INSERT, one push), so it
-- can pass this figure.
--
-- Needs a database migrated by `billhook-worker migrate` and, because variables are sent as
-- parameters, -M prepared (or extended):
--   pgbench -n -M prepared -c 16 -j 2 -T 10 -f bench/pgbench-ingest.sql \
--           -D run=<unique tag> -D seq=0 -D body='\x7b0a…' postgres://…/billhook_bench_…
-- Ids are unique per transaction: <run>_<client_id>_<seq>, seq counting per client.

\set seq :seq + 1
BEGIN;
INSERT INTO webhook_events
    (id, type, api_version, livemode, account, created, signed_at, body, headers, secret_label, status)
VALUES (
    'evt_pgb' || :run::text || '_' || :client_id::text || '_' || :seq::text,
    'invoice.paid',
    '2026-07-29.dahlia',
    false,
    NULL,
    now(),
    now(),
    :body::bytea,
    '{"content-type": "application/json; charset=utf-8", "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)", "stripe-signature": "t=1763860000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"}'::jsonb,
    'secret-1',
    'received'
)
ON CONFLICT (id) DO NOTHING;
INSERT INTO apalis.jobs (
    id,
    job_type,
    job,
    status,
    attempts,
    max_attempts,
    run_at,
    priority,
    metadata,
    idempotency_key
)
SELECT
    unnest(ARRAY[upper(substr(md5(random()::text), 1, 26))]::text[]) AS id,
    'billhook.process_event'::text AS job_type,
    unnest(ARRAY[convert_to('{"v":"1","event_id":"evt_pgb' || :run::text || '_' || :client_id::text || '_' || :seq::text || '"}', 'UTF8')]::bytea[]) AS job,
    'Pending' AS status,
    0 AS attempts,
    unnest(ARRAY[10]::integer[]) AS max_attempts,
    to_timestamp(unnest(ARRAY[extract(epoch FROM now())::bigint]::bigint[])) AS run_at,
    unnest(ARRAY[0]::integer[]) AS priority,
    unnest(ARRAY['"trace_id"=>"4bf92f3577b34da6a3ce929d0e0e4736", "span_id"=>"00f067aa0ba902b7", "trace_flags"=>"1"']::hstore[]) AS metadata,
    unnest(ARRAY['evt_pgb' || :run::text || '_' || :client_id::text || '_' || :seq::text]::text[]) AS idempotency_key;
COMMIT;
