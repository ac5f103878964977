-- How many mails list_messages would show over all pages.
SELECT count(*) AS total
FROM mail_messages
WHERE ($1::text IS NULL OR status = $1)
