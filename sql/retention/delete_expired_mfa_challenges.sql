-- Up to $1 two-factor login challenges past their end (5 minutes after the password step),
-- spent or not: neither can be used again.
DELETE FROM mfa_challenges
WHERE token_hash IN (
    SELECT token_hash FROM mfa_challenges
    WHERE expires_at < now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
