-- Link a spent token to its successor, so a later presentation of it is known as reuse.
UPDATE refresh_tokens
SET replaced_by = $2
WHERE id = $1
