-- The caller as /api/auth/me shows it: the user, whether two-factor sign-in is on, and version
-- (the row's xmin), its ETag.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at,
       EXISTS (
           SELECT 1 FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL
       ) AS mfa_enabled,
       xmin::text AS version
FROM users
WHERE id = $1
