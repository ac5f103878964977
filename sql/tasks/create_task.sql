INSERT INTO tasks (user_id, title, description, is_completed)
VALUES ($1, $2, $3, $4)
RETURNING id, title, description, is_completed, created_at, updated_at, xmin::text AS version
