-- Up to $1 scans older than $2 days, oldest first.
DELETE FROM scans
WHERE id IN (
    SELECT id FROM scans
    WHERE created_at < now() - make_interval(days => $2::int)
    ORDER BY created_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
