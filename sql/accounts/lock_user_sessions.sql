-- Taken first by every transaction that ends sessions of a user (and, FOR SHARE, by a refresh
-- rotation), so ending a session and rotating one of its tokens cannot interleave; no row when
-- the user does not exist.
SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE
