-- Sessions: refresh-token families, revoked access tokens, login failures per email.
-- depends: 0001.users

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea NOT NULL UNIQUE,          -- SHA-256 of the opaque token; the token itself is never stored
    family_id    uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,          -- absolute end of the family
    revoked_at   timestamptz,
    replaced_by  uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    access_jti   uuid,                          -- the access token issued with this one: logout finds the session
    user_agent   text,
    ip           text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_access_jti_idx ON refresh_tokens (access_jti);

-- Access tokens ended early (logout); rows can be dropped once expires_at passes.
CREATE TABLE revoked_access_tokens (
    jti         uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_idx ON revoked_access_tokens (expires_at);

-- Consecutive failed logins per normalised email, whether or not the account exists.
CREATE TABLE login_failures (
    email         text PRIMARY KEY,
    failures      integer NOT NULL DEFAULT 0,
    last_failed_at timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz
);
