-- Every other unused token of user $1 for purpose $2 stops working (after a reset, older links die).
UPDATE account_tokens
SET used_at = now()
WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL
