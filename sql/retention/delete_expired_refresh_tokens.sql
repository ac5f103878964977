-- Up to $1 refresh-token rows whose family has ended: spent or not, they can no longer be
-- presented (reuse detection only matters while the family lives).
DELETE FROM refresh_tokens
WHERE id IN (
    SELECT id FROM refresh_tokens
    WHERE expires_at < now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
