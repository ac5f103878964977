-- Every backup code of user $1 (before new ones are issued, or when two-factor is turned off).
DELETE FROM backup_codes
WHERE user_id = $1
