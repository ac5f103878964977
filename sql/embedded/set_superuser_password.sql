-- The statement that gives the embedded server's superuser this password (ALTER ROLE takes no
-- bind parameters, so the literal is quoted by PostgreSQL itself). Run once, on a data directory
-- made before the embedded server required a password.
SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text)
