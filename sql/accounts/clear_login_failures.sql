-- A successful login ends the run of failures.
DELETE FROM login_failures
WHERE email = $1
