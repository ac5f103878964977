DROP INDEX IF EXISTS scans_created_idx;
DROP INDEX IF EXISTS login_failures_last_failed_idx;
DROP INDEX IF EXISTS refresh_tokens_replaced_by_idx;
DROP INDEX IF EXISTS refresh_tokens_expires_idx;
