-- One pruner at a time across every worker and host: held until the holder's transaction ends.
SELECT pg_try_advisory_xact_lock(hashtextextended('retention.prune', 0))
