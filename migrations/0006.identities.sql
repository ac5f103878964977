-- External identities (Supabase Auth, Better Auth): which local user a provider's subject maps to.
-- A user signs in with one identity; the same email at two providers is two users (never merged by email).
-- depends: 0003.audit_events
CREATE TABLE identities (
    provider    text NOT NULL CHECK (provider IN ('supabase', 'better-auth')),
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       text CHECK (email IS NULL OR length(email) BETWEEN 3 AND 320),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX identities_user_idx ON identities (user_id);
