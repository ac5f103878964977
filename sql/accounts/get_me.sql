-- The caller as /api/auth/me shows it; version (the row's xmin) is its ETag.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at, xmin::text AS version
FROM users
WHERE id = $1
