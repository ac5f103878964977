-- How many tasks list_tasks would return over all pages, with the same filter.
SELECT count(*)
FROM tasks
WHERE user_id = $1
  AND ($2::boolean IS NULL OR is_completed = $2)
