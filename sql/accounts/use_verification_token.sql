-- Spend a verification token: one for the account's address (verify_email) or for a new one
-- (change_email). One statement, so of concurrent uses exactly one gets the row.
UPDATE account_tokens
SET used_at = now()
WHERE token_hash = $1 AND purpose IN ('verify_email', 'change_email') AND used_at IS NULL AND expires_at > now()
RETURNING user_id, email, purpose
