-- Another user's task is indistinguishable from a missing one. version (the row's xmin) is its ETag.
SELECT id, title, description, is_completed, created_at, updated_at, xmin::text AS version
FROM tasks
WHERE id = $1 AND user_id = $2
