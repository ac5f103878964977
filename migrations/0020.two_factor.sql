-- Two-factor sign-in (TOTP, RFC 6238): one authenticator per user, its single-use backup codes,
-- and the short-lived challenges a correct password opens when two-factor is on.
-- depends: 0009.sessions_retention

-- The shared secret is AES-GCM ciphertext (service/two_factor/secrets.py), never the secret itself.
-- confirmed_at NULL: enrolment pending (a code has not yet proven the authenticator).
-- last_step: the newest time step (unix time / 30) whose code was accepted; a code is accepted
-- only for a later step, in one UPDATE, so no code is ever used twice.
CREATE TABLE totp_credentials (
    user_id           uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_ciphertext bytea NOT NULL,
    confirmed_at      timestamptz,
    last_step         bigint NOT NULL DEFAULT -1,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- HMAC-SHA256 of each backup code under a key derived from MFA_ENCRYPTION_KEY; used_at once spent.
CREATE TABLE backup_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, code_hash)
);

-- A correct password of an account with two-factor on: the SHA-256 of the mfa_token handed out,
-- spent (used_at) by the one verification that succeeds.
CREATE TABLE mfa_challenges (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);
