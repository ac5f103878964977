-- A new set of backup codes for user $1 ($2: their HMACs).
INSERT INTO backup_codes (user_id, code_hash)
SELECT $1, unnest($2::bytea[])
