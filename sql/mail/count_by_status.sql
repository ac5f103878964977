-- Mails by status, for /metrics.
SELECT status, count(*) AS messages
FROM mail_messages
GROUP BY status
