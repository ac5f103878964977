-- Delete a user; their sessions and data go with them (ON DELETE CASCADE), audit rows keep
-- the event with actor_id set to NULL and the email snapshot.
DELETE FROM users
WHERE id = $1
