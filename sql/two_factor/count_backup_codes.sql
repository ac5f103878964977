-- How many unused backup codes user $1 has left.
SELECT count(*) FROM backup_codes WHERE user_id = $1 AND used_at IS NULL
