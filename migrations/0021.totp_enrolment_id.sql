-- Each pending two-factor enrolment gets an identity of its own: POST /api/auth/2fa/totp sets a new
-- one whenever it stores (or replaces) a pending secret, and a confirmation turns two-factor on
-- only if the enrolment it checked the code against is still the pending one
-- (sql/two_factor/confirm_enrolment.sql). The ciphertext cannot serve: `service mfa-rotate`
-- rewrites it under a new key without changing the secret.
-- depends: 0020.two_factor

ALTER TABLE totp_credentials ADD COLUMN enrolment_id uuid NOT NULL DEFAULT gen_random_uuid();
