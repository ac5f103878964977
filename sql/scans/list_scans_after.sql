-- The page after the cursor ($2 created_at, $3 id): a row comparison the index answers directly.
SELECT id, id AS scan_id, filename, data, source, created_at, created_at AS timestamp
FROM scans
WHERE user_id = $1 AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC
LIMIT $4
