-- apalis decodes every fetched job argument as JSON before any handler runs, and one argument
-- that is not JSON fails the whole fetch and stops the worker (verified with apalis-postgres
-- 1.0). Billhook's queues therefore refuse such a row at insert: the error reaches whoever
-- wrote it, instead of a worker stopping later. Arguments that are JSON of the wrong shape are
-- decoded by the handler and dead-lettered.
CREATE FUNCTION billhook_job_is_json(job bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM convert_from(job, 'UTF8')::jsonb;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END $$;

ALTER TABLE apalis.jobs
    ADD CONSTRAINT billhook_jobs_are_json
    CHECK (job_type NOT LIKE 'billhook.%' OR billhook_job_is_json(job));
