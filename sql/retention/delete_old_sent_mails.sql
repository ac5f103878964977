-- Up to $1 mails sent more than $2 days ago. Pending mails (not sent yet) and dead ones (the
-- record of what failed, docs/mail.md) are never removed here.
DELETE FROM mail_messages
WHERE id IN (
    SELECT id FROM mail_messages
    WHERE status = 'sent' AND sent_at < now() - make_interval(days => $2::int)
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
