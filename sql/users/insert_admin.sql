-- A new local administrator; no row when a local account already holds the email (any case).
INSERT INTO users (email, password_hash, role)
VALUES ($1, $2, 'admin')
ON CONFLICT (lower(email)) WHERE provider = 'local' DO NOTHING
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
