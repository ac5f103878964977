-- Another user's task is indistinguishable from a missing one.
SELECT id, title, description, is_completed, created_at, updated_at
FROM tasks
WHERE id = $1 AND user_id = $2
