-- One more consecutive failure for a normalised email, in one atomic upsert; once the count
-- reaches $2 the email is locked for $3 minutes. A count older than the lockout window, or one
-- whose lock has expired, starts again at 1.
INSERT INTO login_failures AS f (email, failures, last_failed_at, locked_until)
VALUES ($1, 1, now(), CASE WHEN $2::int <= 1 THEN now() + make_interval(mins => $3::int) END)
ON CONFLICT (email) DO UPDATE
SET (failures, last_failed_at, locked_until) = (
    SELECT counted.n, now(), CASE WHEN counted.n >= $2::int THEN now() + make_interval(mins => $3::int) END
    FROM (
        SELECT CASE
                   WHEN f.last_failed_at > now() - make_interval(mins => $3::int)
                        AND (f.locked_until IS NULL OR f.locked_until > now())
                   THEN f.failures + 1
                   ELSE 1
               END AS n
    ) AS counted
)
RETURNING failures, locked_until IS NOT NULL AS locked
