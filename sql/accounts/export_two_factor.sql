-- The caller's two-factor state, for the export of their data (never the secret or the codes).
SELECT t.confirmed_at IS NOT NULL AS enabled,
       t.confirmed_at AS enabled_at,
       (SELECT count(*) FROM backup_codes b WHERE b.user_id = $1 AND b.used_at IS NULL)::int AS backup_codes_left
FROM users u
LEFT JOIN totp_credentials t ON t.user_id = u.id
WHERE u.id = $1
