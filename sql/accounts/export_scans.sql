-- Every risk scan of the caller, for the export of their data.
SELECT id, id AS scan_id, filename, data, source, created_at, created_at AS timestamp
FROM scans
WHERE user_id = $1
ORDER BY created_at, id
