-- The console's indexes on webhook_events (issue 14), measured by bench/console.sh on
-- 1,000,000 events (docs/performance.md, "Console"): without them the object filter and the
-- overview read the whole table (355 ms and 1.1 s at p50).
--
-- The object filter of the events list (query/events.rs), newest first. Every stored event
-- has an object id, so this one is written on every insert: its cost to ingest is measured
-- in docs/performance.md.
CREATE INDEX webhook_events_object_idx ON webhook_events (object_id, received_at DESC, id DESC)
    WHERE object_id IS NOT NULL;
-- The overview: events applied per minute over 24 h, and the lag of the last hour
-- (query/overview.rs). Partial: an event is inserted without applied_at, so the receiver never
-- writes it; the worker does, once, when it applies the event.
CREATE INDEX webhook_events_applied_idx ON webhook_events (applied_at) WHERE applied_at IS NOT NULL;
