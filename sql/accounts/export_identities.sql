-- The caller's identities at external providers, for the export of their data.
SELECT provider, subject, email, created_at
FROM identities
WHERE user_id = $1
ORDER BY created_at, provider, subject
