-- Count one password attempt for $1 (a normalised email) BEFORE the password is checked, in one
-- atomic upsert: the row lock orders concurrent attempts and each gets its own number, so no
-- burst can see "not locked" many times over. Only attempts numbered 1..$2 are checked; the
-- $2-th locks the email for $3 minutes, and attempts while it is locked are refused
-- (retry_after is the lock's remaining seconds). A count older than the window, or whose lock
-- has expired, starts again at 1. A correct password deletes the row (clear_login_failures.sql).
-- The same round trip reads the local account the email names (id, password_hash, is_active,
-- email_verified; all NULL when there is none), which a login checks the password against.
-- Its commit does not wait for the WAL flush (synchronous_commit off for this one transaction;
-- it must run on its own, never inside a caller's transaction): the count is visible to every
-- other attempt the moment it commits, which is all the lockout needs, and every answer that
-- tells whether the password was right follows a synchronous commit of the same request (the
-- failure's audit event, the session, the cleared count), which flushes this count with it,
-- WAL being flushed in order. A crash can lose only the counts of attempts whose verdict was
-- never sent. That saves one WAL flush per login (bench/README.md, "One WAL flush per login").
WITH no_flush_wait AS (
    SELECT set_config('synchronous_commit', 'off', true)
),
counted AS (
    INSERT INTO login_failures AS f (email, failures, last_failed_at, locked_until)
    VALUES ($1, 1, now(), CASE WHEN $2::int <= 1 THEN now() + make_interval(mins => $3::int) END)
    ON CONFLICT (email) DO UPDATE
    SET (failures, last_failed_at, locked_until) = (
        SELECT counted.n,
               now(),
               CASE
                   WHEN counted.n < $2::int THEN NULL
                   WHEN f.locked_until > now() THEN f.locked_until
                   ELSE now() + make_interval(mins => $3::int)
               END
        FROM (
            SELECT CASE
                       WHEN f.last_failed_at > now() - make_interval(mins => $3::int)
                            AND (f.locked_until IS NULL OR f.locked_until > now())
                       THEN least(f.failures + 1, $2::int + 1)
                       ELSE 1
                   END AS n
        ) AS counted
    )
    RETURNING failures AS attempt,
              ceil(extract(epoch FROM locked_until - clock_timestamp()))::int AS retry_after
)
SELECT counted.attempt, counted.retry_after, u.id, u.password_hash, u.is_active, u.email_verified
FROM counted
CROSS JOIN no_flush_wait
LEFT JOIN users AS u ON lower(u.email) = $1 AND u.provider = 'local'
