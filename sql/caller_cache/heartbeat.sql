-- The caller listener's heartbeat: the connection answers, and every notification committed
-- before it was sent has arrived ahead of this answer.
SELECT 1
