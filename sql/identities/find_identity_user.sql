-- The user an external identity is linked to.
SELECT user_id
FROM identities
WHERE provider = $1 AND subject = $2
