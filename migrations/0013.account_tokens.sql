-- Email verification, email change and password reset: the verified flag, one-time tokens (stored only as a
-- SHA-256 digest) and the per-address counters that cap how many account mails are sent.
-- depends: 0012.mail_outbox

ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

CREATE TABLE account_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'change_email', 'reset_password')),
    -- The address the link was sent to: verifying proves this address, not a later one; for
    -- change_email, the new address the account moves to when the link is followed.
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_idx ON account_tokens (expires_at);

-- Mails asked for per (purpose, address) within a window: one atomic upsert per request.
CREATE TABLE account_mail_counters (
    purpose       text NOT NULL,
    email         text NOT NULL,
    window_start  timestamptz NOT NULL,
    sent          integer NOT NULL,
    PRIMARY KEY (purpose, email)
);
CREATE INDEX account_mail_counters_window_idx ON account_mail_counters (window_start);
