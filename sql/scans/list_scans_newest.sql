-- The first page of a user's scans, newest first; $2 is the page size plus one.
SELECT id, id AS scan_id, filename, data, source, created_at, created_at AS timestamp
FROM scans
WHERE user_id = $1
ORDER BY created_at DESC, id DESC
LIMIT $2
