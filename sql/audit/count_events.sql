-- How many audit events list_events.sql matches with the same filters, across all pages.
SELECT count(*)
FROM audit_events
WHERE ($1::text IS NULL OR action = $1)
  AND ($2::uuid IS NULL OR actor_id = $2)
  AND ($3::timestamptz IS NULL OR at >= $3)
  AND ($4::timestamptz IS NULL OR at < $4)
