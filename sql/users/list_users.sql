-- One page of users for the admin list, newest first; NULL filters match everything.
-- $1 is a substring of the email, matched literally: \, % and _ in it are escaped for ILIKE.
SELECT id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
FROM users
WHERE ($1::text IS NULL
       OR email ILIKE '%' || replace(replace(replace($1, '\', '\\'), '%', '\%'), '_', '\_') || '%')
  AND ($2::text IS NULL OR role = $2)
  AND ($3::boolean IS NULL OR is_active = $3)
ORDER BY created_at DESC, id DESC
LIMIT $4 OFFSET $5
