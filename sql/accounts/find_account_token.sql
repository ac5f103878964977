-- Whose one-time token this is, so the user's sessions lock can be taken before it is spent.
SELECT user_id
FROM account_tokens
WHERE token_hash = $1 AND purpose = $2
