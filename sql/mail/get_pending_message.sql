-- A mail still to deliver; no row once it was sent (a job picked again after a crash) or is dead.
SELECT id, kind, recipient, subject, text_body, html_body, attempts
FROM mail_messages
WHERE id = $1 AND status = 'pending'
