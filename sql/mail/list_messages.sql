-- Mails for administrators, newest first, optionally of one status. Never the bodies.
SELECT id, kind, recipient, subject, status, attempts, last_error, created_at, updated_at, sent_at
FROM mail_messages
WHERE ($1::text IS NULL OR status = $1)
ORDER BY created_at DESC, id
LIMIT $2 OFFSET $3
