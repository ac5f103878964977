-- The audit events about the caller: what they did, and what was done to their account. Of an
-- event someone else caused (an administrator), the other person's address, IP and user agent
-- are not the caller's data and are left out.
SELECT id,
       at,
       action,
       target_type,
       target_id,
       actor_id IS NOT DISTINCT FROM $1 AS by_you,
       CASE WHEN actor_id IS NOT DISTINCT FROM $1 THEN ip END AS ip,
       CASE WHEN actor_id IS NOT DISTINCT FROM $1 THEN user_agent END AS user_agent,
       details
FROM audit_events
WHERE actor_id = $1 OR (target_type = 'user' AND target_id = $1::text)
ORDER BY at, id
