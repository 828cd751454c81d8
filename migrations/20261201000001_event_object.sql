-- The Stripe object each event is about (`data.object.id`), read by the receiver from the
-- envelope, so that the worker locks the event row and the object in one statement. NULL for
-- events stored before this migration and for objects without a string id: the worker then
-- takes the object's lock from the parsed body, as before.
ALTER TABLE webhook_events ADD COLUMN object_id text;
