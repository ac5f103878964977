-- bench/run.py: transactions committed in this database so far (one per autocommitted statement).
SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()
