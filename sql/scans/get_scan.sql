SELECT id, id AS scan_id, filename, data, source, created_at, created_at AS timestamp
FROM scans
WHERE id = $1 AND user_id = $2
