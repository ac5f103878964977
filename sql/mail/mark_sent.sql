-- Delivered: the bodies, which may carry a one-time link, are no longer kept.
UPDATE mail_messages
SET status = 'sent', sent_at = now(), updated_at = now(), attempts = attempts + 1,
    text_body = '', html_body = ''
WHERE id = $1 AND status = 'pending'
