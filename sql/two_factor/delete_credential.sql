-- Turn two-factor off for user $1: the authenticator and every open challenge go.
WITH challenges AS (
    DELETE FROM mfa_challenges WHERE user_id = $1
)
DELETE FROM totp_credentials
WHERE user_id = $1
RETURNING confirmed_at IS NOT NULL AS confirmed
