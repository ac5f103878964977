-- Spend one backup code of user $1, once: no row when it is unknown or already used.
UPDATE backup_codes
SET used_at = now()
WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL
RETURNING user_id
