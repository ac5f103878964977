-- Up to $1 rows of pgqueuer's job log (a few per job run: picked, then its outcome) written more
-- than $2 days ago, oldest first. The queue itself (`pgqueuer`: jobs waiting, running, or held
-- after a permanent failure) is not touched.
DELETE FROM pgqueuer_log
WHERE id IN (
    SELECT id FROM pgqueuer_log
    WHERE created < now() - make_interval(days => $2::int)
    ORDER BY created
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
