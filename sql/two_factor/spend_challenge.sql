-- Spend a challenge, once: concurrent verifications of one mfa_token wait on the row lock and
-- then see used_at set, so exactly one gets a row.
UPDATE mfa_challenges
SET used_at = now()
WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
RETURNING user_id
