-- The failed-login count kept under a deleted account's email.
DELETE FROM login_failures
WHERE email = $1
