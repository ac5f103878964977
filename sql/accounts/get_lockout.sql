-- Seconds left on an email's login lockout; no row when it is not locked.
SELECT ceil(extract(epoch FROM locked_until - now()))::int AS retry_after
FROM login_failures
WHERE email = $1 AND locked_until > now()
FOR UPDATE
