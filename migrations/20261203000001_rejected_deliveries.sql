-- Rejected deliveries (issue 14's overview, issue 15's alerts), counted by the receiver per
-- minute and reason and written every BILLHOOK_REJECTIONS_FLUSH (adding to the row of that
-- minute), never one row per request: a flood of forged requests costs one small upsert per
-- flush. Reasons: the signature's (missing_header, malformed, no_v1_signature, mismatch,
-- outside_tolerance) and the request's (rate_limited, malformed_event, too_large, too_slow).
-- Nothing from the request is kept. New table only: older binaries ignore it.
CREATE TABLE rejected_deliveries (
    minute  timestamptz NOT NULL,
    reason  text        NOT NULL,
    count   bigint      NOT NULL,
    PRIMARY KEY (minute, reason)
);
