-- Up to $1 verification, email-change and reset tokens that can no longer be used: spent, or
-- past their expiry. A token still valid (unspent, not expired) is never removed.
DELETE FROM account_tokens
WHERE token_hash IN (
    SELECT token_hash FROM account_tokens
    WHERE used_at IS NOT NULL OR expires_at < now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
