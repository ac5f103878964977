-- Before an account deletes itself: the audit events about it keep what happened and drop who it
-- was (its email snapshot, the addresses it came from, an email in the details). Of an event an
-- administrator caused, the administrator's own columns stay.
UPDATE audit_events
SET actor_email = CASE WHEN actor_id = $1 THEN NULL ELSE actor_email END,
    ip = CASE WHEN actor_id = $1 THEN NULL ELSE ip END,
    user_agent = CASE WHEN actor_id = $1 THEN NULL ELSE user_agent END,
    details = details - 'email'
WHERE actor_id = $1 OR (target_type = 'user' AND target_id = $1::text)
