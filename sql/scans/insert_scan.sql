INSERT INTO scans (user_id, filename, data, source)
VALUES ($1, $2, $3, $4)
RETURNING id, id AS scan_id, filename, data, source, created_at, created_at AS timestamp
