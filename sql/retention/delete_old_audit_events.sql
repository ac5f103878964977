-- Up to $1 audit events older than $2 days, oldest first.
DELETE FROM audit_events
WHERE id IN (
    SELECT id FROM audit_events
    WHERE at < now() - make_interval(days => $2::int)
    ORDER BY at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
