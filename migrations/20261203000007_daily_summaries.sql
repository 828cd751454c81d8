-- The daily summary (issue 15): one row per day whose summary was written, in the transaction
-- that writes its emails, so that however many workers tick and whatever restarts happen a day
-- is sent once. New table only: older binaries ignore it.
CREATE TABLE daily_summaries (
    day         date        PRIMARY KEY,          -- the calendar day summarised, in `zone`
    zone        text        NOT NULL,             -- BILLHOOK_SUMMARY_AT's time zone then
    created_at  timestamptz NOT NULL DEFAULT now()
);
