-- Indexes for filters of the console's lists that 20261203000002 left to a scan (issue 14).
-- Each serves one query of crates/billhook-console/src/query/, newest first with a keyset on
-- (time, id). Measured on 300,000 emails and notices: a template or type that one row in a
-- thousand has took 12 to 28 ms walking the list's time index (a template no row has: the
-- whole table); with these, under 1 ms.

-- emails.rs: the list filtered by template.
CREATE INDEX emails_template_created_idx ON emails (template, created_at DESC, id DESC);
-- notices.rs: the list filtered by type.
CREATE INDEX app_notifications_type_created_idx ON app_notifications (type, created_at DESC, id DESC);
-- dunning.rs: the list filtered by subscription.
CREATE INDEX dunning_runs_subscription_idx ON dunning_runs (subscription_id, started_at DESC, id DESC);
