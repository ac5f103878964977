-- Whether user $1 has two-factor on (a confirmed authenticator).
SELECT EXISTS (
    SELECT 1 FROM totp_credentials WHERE user_id = $1 AND confirmed_at IS NOT NULL
)
