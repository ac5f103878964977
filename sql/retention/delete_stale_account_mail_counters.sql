-- Up to $1 per-address mail counters whose window ($2 seconds) has ended: the next mail to that
-- address starts a new window at 1 whether the row is there or not.
DELETE FROM account_mail_counters
WHERE (purpose, email) IN (
    SELECT purpose, email FROM account_mail_counters
    WHERE window_start <= now() - make_interval(secs => $2::int)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
