-- Accounts: local (email + password) and external (Supabase, Better Auth) users.
-- An email is unique among local accounts only: an external identity is never merged by email.
CREATE TABLE users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email               text CHECK (email IS NULL OR length(email) BETWEEN 3 AND 320),
    password_hash       text,
    full_name           text CHECK (full_name IS NULL OR length(full_name) <= 200),
    provider            text NOT NULL DEFAULT 'local'
                        CHECK (provider IN ('local', 'supabase', 'better-auth')),
    role                text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    is_active           boolean NOT NULL DEFAULT true,
    -- Access tokens issued before this instant are refused (password change, demotion).
    tokens_valid_after  timestamptz NOT NULL DEFAULT '-infinity',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_local_has_email CHECK (provider <> 'local' OR email IS NOT NULL)
);

CREATE UNIQUE INDEX users_local_email_key ON users (lower(email)) WHERE provider = 'local';
CREATE INDEX users_email_idx ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);
