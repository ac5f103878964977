-- Up to $1 revoked access tokens that have expired anyway. Five minutes of margin cover the
-- verifier's leeway and a clock that runs behind the database's.
DELETE FROM revoked_access_tokens
WHERE jti IN (
    SELECT jti FROM revoked_access_tokens
    WHERE expires_at < now() - interval '5 minutes'
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
