-- Session management and retention: the indexes that listing sessions and the batched prune use.
-- depends: 0006.identities

-- The prune finds rows past the family's end; the self-reference of a spent token to its
-- successor is what deleting a row has to clear (ON DELETE SET NULL), without a scan per row.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_replaced_by_idx ON refresh_tokens (replaced_by) WHERE replaced_by IS NOT NULL;
CREATE INDEX login_failures_last_failed_idx ON login_failures (last_failed_at);
CREATE INDEX scans_created_idx ON scans (created_at);
