-- The migrations yoyo has applied to this database (its own bookkeeping table).
SELECT migration_id
FROM _yoyo_migration
