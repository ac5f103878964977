-- One page of audit events, newest first; NULL filters match everything. since is inclusive,
-- until exclusive.
SELECT id, at, actor_id, actor_email, action, target_type, target_id, ip, user_agent, details
FROM audit_events
WHERE ($1::text IS NULL OR action = $1)
  AND ($2::uuid IS NULL OR actor_id = $2)
  AND ($3::timestamptz IS NULL OR at >= $3)
  AND ($4::timestamptz IS NULL OR at < $4)
ORDER BY at DESC, id DESC
LIMIT $5 OFFSET $6
