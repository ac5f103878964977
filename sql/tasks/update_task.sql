-- PATCH: NULL title or is_completed means "not sent" (neither may be null);
-- description may be set to null, so $4 says whether it was sent at all.
UPDATE tasks
SET title        = coalesce($3, title),
    description  = CASE WHEN $4::boolean THEN $5 ELSE description END,
    is_completed = coalesce($6, is_completed),
    updated_at   = now()
WHERE id = $1 AND user_id = $2
RETURNING id, title, description, is_completed, created_at, updated_at
