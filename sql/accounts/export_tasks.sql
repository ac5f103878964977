-- Every task of the caller, for the export of their data.
SELECT id, title, description, is_completed, created_at, updated_at
FROM tasks
WHERE user_id = $1
ORDER BY created_at, id
