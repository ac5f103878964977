-- Accept a code of time step $2 for user $1, once: concurrent uses of one code wait on the row
-- lock and then see last_step = $2, so exactly one gets a row.
UPDATE totp_credentials
SET last_step = $2
WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2
RETURNING user_id
