"""The database: the asyncpg pool, the SQL file loader, the embedded PostgreSQL and migrations."""
