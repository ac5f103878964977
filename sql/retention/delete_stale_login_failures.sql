-- Up to $1 runs of failed logins that no longer count: older than the lockout window ($2
-- minutes, after which the next failure starts again at 1) and not locked any more.
DELETE FROM login_failures
WHERE email IN (
    SELECT email FROM login_failures
    WHERE last_failed_at < now() - make_interval(mins => $2::int)
      AND (locked_until IS NULL OR locked_until < now())
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
