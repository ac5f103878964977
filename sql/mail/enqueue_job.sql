-- A background job for pgqueuer (the row its own enqueue writes, without tracing headers): due now,
-- announced to every worker by the table's NOTIFY trigger when the transaction commits.
INSERT INTO pgqueuer (priority, entrypoint, payload, status)
VALUES (0, $1, $2, 'queued')
