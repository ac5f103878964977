INSERT INTO audit_events (actor_id, actor_email, action, target_type, target_id, ip, user_agent, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
