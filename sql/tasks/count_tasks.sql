-- How many tasks list_tasks would return over all pages, with the same filter; only needed
-- when a page past the end comes back empty and so carries no total.
SELECT count(*)
FROM tasks
WHERE user_id = $1
  AND ($2::boolean IS NULL OR is_completed = $2)
