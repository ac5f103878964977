-- The outbox's mails to a deleted account's address (sent, pending or dead): their recipient,
-- subject and any link are personal data. A pending one's job then finds nothing to send.
DELETE FROM mail_messages
WHERE lower(recipient) = lower($1)
