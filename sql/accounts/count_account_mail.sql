-- Count one mail of purpose $1 to address $2 in a window of $3 seconds: one atomic upsert, so
-- concurrent requests on any number of workers each get their own number. `sent` is this
-- request's number in the window; `retry_after` the seconds until the window ends.
INSERT INTO account_mail_counters AS c (purpose, email, window_start, sent)
VALUES ($1, $2, now(), 1)
ON CONFLICT (purpose, email) DO UPDATE
SET sent = CASE WHEN c.window_start <= now() - make_interval(secs => $3::int) THEN 1 ELSE c.sent + 1 END,
    window_start = CASE WHEN c.window_start <= now() - make_interval(secs => $3::int) THEN now()
                        ELSE c.window_start END
RETURNING sent,
          greatest(1, ceil(extract(epoch FROM c.window_start + make_interval(secs => $3::int) - now())))::int
              AS retry_after
