-- End every token of one family (reuse of a spent token was detected).
UPDATE refresh_tokens
SET revoked_at = now()
WHERE family_id = $1 AND revoked_at IS NULL
