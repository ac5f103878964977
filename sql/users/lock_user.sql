-- One user, locked until the end of the transaction that is about to change or delete it.
SELECT id, email, full_name, role, is_active, provider, created_at, updated_at
FROM users
WHERE id = $1
FOR UPDATE
