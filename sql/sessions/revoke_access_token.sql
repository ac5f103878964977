-- Logout: this access token (by jti) stops working before it expires.
INSERT INTO revoked_access_tokens (jti, user_id, expires_at)
VALUES ($1, $2, to_timestamp($3))
ON CONFLICT (jti) DO NOTHING
