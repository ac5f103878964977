-- Move a local account to the address a change_email link was sent to (and followed: proven).
-- A unique violation when another local account took the address meanwhile.
UPDATE users
SET email = $2, email_verified = true, updated_at = now()
WHERE id = $1 AND provider = 'local' AND is_active
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
