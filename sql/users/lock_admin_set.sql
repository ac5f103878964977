-- Serialise every change that can take away an administrator (demote, deactivate, delete), so two
-- concurrent changes cannot each see "another admin remains" and together remove the last one.
SELECT pg_advisory_xact_lock(hashtextextended('users.admin_set', 0))
