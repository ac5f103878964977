-- `service mfa-rotate`: each secret re-encrypted ($3) replaces the ciphertext it was made from
-- ($2) only if that is still the one stored: a secret an enrolment or another rotation changed in
-- the meantime is left as they wrote it (PostgreSQL re-checks the condition on the row version a
-- concurrent UPDATE committed). The users whose secret was replaced.
UPDATE totp_credentials AS t
SET secret_ciphertext = r.new_ciphertext
FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS r (user_id, old_ciphertext, new_ciphertext)
WHERE t.user_id = r.user_id AND t.secret_ciphertext = r.old_ciphertext
RETURNING t.user_id
