-- PATCH: NULL title or is_completed means "not sent" (neither may be null);
-- description may be set to null, so $4 says whether it was sent at all.
-- $7: the versions (xmin) If-Match allows, NULL for any: checked in the same statement that
-- writes, so of two clients sending one ETag exactly one changes the task.
UPDATE tasks
SET title        = coalesce($3, title),
    description  = CASE WHEN $4::boolean THEN $5 ELSE description END,
    is_completed = coalesce($6, is_completed),
    updated_at   = now()
WHERE id = $1 AND user_id = $2
  AND ($7::text[] IS NULL OR xmin::text = ANY ($7::text[]))
RETURNING id, title, description, is_completed, created_at, updated_at, xmin::text AS version
