-- A mail to deliver; written in the transaction of the change that causes it.
INSERT INTO mail_messages (kind, recipient, subject, text_body, html_body)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
