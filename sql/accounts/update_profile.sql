-- The caller's own profile fields; $2 says whether full_name was sent at all.
UPDATE users
SET full_name = CASE WHEN $2 THEN $3 ELSE full_name END,
    updated_at = now()
WHERE id = $1
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at,
          EXISTS (
              SELECT 1 FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL
          ) AS mfa_enabled,
          xmin::text AS version
