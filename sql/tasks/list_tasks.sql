-- One page of a user's tasks, newest first; $2 NULL means completed and open alike.
-- Ordered by (created_at, id) so equal timestamps still page without repeats or gaps.
-- Served by idx_tasks_user_id, or idx_tasks_user_id_completed when $2 is given.
-- total counts the rows matching the filter over all pages, in the same round trip.
SELECT id, title, description, is_completed, created_at, updated_at, count(*) OVER () AS total
FROM tasks
WHERE user_id = $1
  AND ($2::boolean IS NULL OR is_completed = $2)
ORDER BY created_at DESC, id DESC
LIMIT $3 OFFSET $4
