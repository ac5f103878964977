-- Spend a one-time token: one statement, so of any number of concurrent uses exactly one gets the
-- row. No row: unknown, of another purpose, already used or expired.
UPDATE account_tokens
SET used_at = now()
WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
RETURNING user_id, email
