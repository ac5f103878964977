-- The caller as /api/auth/me shows it: the user and whether two-factor sign-in is on.
SELECT id, email, full_name, role, is_active, provider, created_at, updated_at,
       EXISTS (
           SELECT 1 FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL
       ) AS mfa_enabled
FROM users
WHERE id = $1
