DROP TABLE IF EXISTS mfa_challenges;
DROP TABLE IF EXISTS backup_codes;
DROP TABLE IF EXISTS totp_credentials;
