-- A delivery attempt failed; $3 true: it was the last one, and the mail is kept as dead.
UPDATE mail_messages
SET attempts = attempts + 1,
    last_error = $2,
    status = CASE WHEN $3::boolean THEN 'dead' ELSE status END,
    updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING attempts
