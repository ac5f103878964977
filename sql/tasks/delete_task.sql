-- $3: the versions (xmin) If-Match allows, NULL for any (see update_task.sql).
DELETE FROM tasks
WHERE id = $1 AND user_id = $2
  AND ($3::text[] IS NULL OR xmin::text = ANY ($3::text[]))
RETURNING id
