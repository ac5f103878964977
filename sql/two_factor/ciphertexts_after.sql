-- One batch of `service mfa-rotate`: the encrypted secrets of the users after $1 (all when $1 is
-- null), in user id order, at most $2.
SELECT user_id, secret_ciphertext
FROM totp_credentials
WHERE $1::uuid IS NULL OR user_id > $1::uuid
ORDER BY user_id
LIMIT $2
