"""SQL through psql (the suite needs nothing outside Python's standard library), and the
snapshot of final states two runs of one stream must agree on."""
import json
import os
import subprocess

from services import find_pg_bin

PSQL = find_pg_bin("psql")


class DbError(Exception):
    pass


def sql(url, query, timeout=20):
    env = dict(os.environ, PGCONNECT_TIMEOUT="3")
    try:
        out = subprocess.run([PSQL, "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", query],
                             capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise DbError("psql timed out after %ds" % timeout)
    if out.returncode != 0:
        raise DbError(out.stderr.strip()[-300:])
    return out.stdout.strip()


def rows(url, query):
    return json.loads(sql(url, "SELECT coalesce(json_agg(q), '[]'::json) FROM (%s) q" % query))


def scalar(url, query):
    return int(sql(url, query) or 0)


def try_scalar(url, query):
    try:
        return scalar(url, query)
    except DbError:
        return None


# What the billing handlers decide, as crates/billhook-testkit/src/billing.rs `snapshot` takes
# it (minus what legitimately depends on delivery order: stale marks, audit history, times of
# writing, refund-debit splits), plus the dunning runs, emails and order notices, which the
# two-wave stream makes independent of processing order.
SNAPSHOT = [
    ("customers", "SELECT id, email, name, deleted, object, stripe_version, last_event_id FROM customers ORDER BY id"),
    ("payment_methods", "SELECT id, customer_id, type, object, stripe_version, last_event_id FROM payment_methods ORDER BY id"),
    ("subscriptions", "SELECT id, customer_id, status, cancel_at_period_end, current_period_start, current_period_end, trial_end, canceled_at, ended_at, object, stripe_version, last_event_id FROM subscriptions ORDER BY id"),
    ("subscription_items", "SELECT * FROM subscription_items ORDER BY id"),
    ("invoices", "SELECT id, customer_id, subscription_id, payment_intent_id, status, amount_due, amount_paid, amount_remaining, attempt_count, paid_at, object, stripe_version, last_event_id FROM invoices ORDER BY id"),
    ("payments", "SELECT id, kind, payment_intent_id, customer_id, amount, amount_received, amount_refunded, status, failure_code, object, stripe_version, last_event_id FROM payments ORDER BY id"),
    ("refunds", "SELECT id, charge_id, payment_intent_id, amount, status, object, last_event_id FROM refunds ORDER BY id"),
    ("checkout_sessions", "SELECT id, mode, status, payment_status, customer_id, order_reference, payment_intent_id, subscription_id, amount_total, object, stripe_version, last_event_id FROM checkout_sessions ORDER BY id"),
    ("orders", "SELECT reference, checkout_ref, payment_intent_id, customer_id, customer_email, amount, currency, status, amount_refunded, failure_reason, created_by, paid_at IS NOT NULL AS paid FROM orders ORDER BY reference, checkout_ref"),
    ("ledger_balances", "SELECT customer_id, unit, balance FROM ledger_balances ORDER BY customer_id, unit"),
    ("ledger_credits", "SELECT customer_id, kind, amount, unit FROM ledger_entries WHERE kind <> 'refund_debit' ORDER BY kind, customer_id"),
    ("entitlements", "SELECT * FROM entitlements ORDER BY customer_id, subscription_id, price_id"),
    ("dunning_runs", "SELECT invoice_id, subscription_id, customer_id, state, steps_done, stop_reason FROM dunning_runs ORDER BY invoice_id"),
    ("emails", "SELECT recipient, template, status, count(*) AS n FROM emails GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"),
    ("order_notices", "SELECT type, coalesce(body->'data'->>'reference', body->'data'->'order'->>'reference') AS reference, count(*) AS n FROM app_notifications WHERE type LIKE 'order.%' GROUP BY 1, 2 ORDER BY 1, 2"),
    ("stored_events", "SELECT type, count(*) AS n FROM webhook_events GROUP BY type ORDER BY type"),
]

LEDGER_SUM = "SELECT coalesce(sum(amount), 0) FROM ledger_entries"


def snapshot(url):
    return {name: rows(url, query) for name, query in SNAPSHOT}


def differences(a, b, limit=3):
    """Tables whose rows differ, each with a few rows only one side has."""
    found = []
    for name, _ in SNAPSHOT:
        left = {json.dumps(r, sort_keys=True) for r in a[name]}
        right = {json.dumps(r, sort_keys=True) for r in b[name]}
        if left != right:
            only_a = sorted(left - right)[:limit]
            only_b = sorted(right - left)[:limit]
            found.append((name, len(a[name]), len(b[name]), only_a, only_b))
    return found
