ALTER TABLE totp_credentials DROP COLUMN IF EXISTS enrolment_id;
