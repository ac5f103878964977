-- A new local account; no row when a local account already holds the email (any case).
INSERT INTO users (email, password_hash, full_name)
VALUES ($1, $2, $3)
ON CONFLICT (lower(email)) WHERE provider = 'local' DO NOTHING
RETURNING id, email, full_name, role, is_active, provider, email_verified, created_at, updated_at
