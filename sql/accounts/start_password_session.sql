-- A plain login's second and last statement, once argon2 has accepted the password: what the
-- general path (lock_login_user.sql, then clear_login_failures.sql,
-- sessions/start_refresh_family.sql and audit/insert_event.sql in one transaction) does, as one
-- statement, so one round trip and one commit. The user's row is locked first, as every change
-- to their sessions does, and what the password check relied on is re-read after the lock: a
-- deactivation or a password change that committed while argon2 ran wins. Nothing is written
-- unless the account is active, still has the password that was checked ($2) and has no
-- two-factor sign-in (that needs a challenge: the general path); the flags say which. No row:
-- the user was deleted.
-- $1 user id, $2 checked hash, $3 email, $4 refresh token digest, $5 access token jti,
-- $6 user agent, $7 ip, $8 refresh family lifetime in days, $9 the audit event's details.
WITH checked AS (
    SELECT id,
           is_active,
           password_hash = $2 AS same_password,
           EXISTS (
               SELECT 1 FROM totp_credentials t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL
           ) AS mfa_enabled
    FROM users
    WHERE id = $1
    FOR NO KEY UPDATE
),
starting AS (
    SELECT id FROM checked WHERE is_active AND same_password AND NOT mfa_enabled
),
cleared AS (
    DELETE FROM login_failures
    WHERE email = $3 AND EXISTS (SELECT 1 FROM starting)
),
family AS (
    INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, access_jti, user_agent, ip)
    SELECT $4, gen_random_uuid(), starting.id, now() + make_interval(days => $8::int), $5, $6, $7
    FROM starting
),
audited AS (
    INSERT INTO audit_events (actor_id, actor_email, action, target_type, target_id, ip, user_agent, details)
    SELECT starting.id, $3, 'auth.login', 'user', starting.id::text, $7, $6, $9::jsonb
    FROM starting
)
SELECT is_active, same_password, mfa_enabled
FROM checked
