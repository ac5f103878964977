-- Active administrators other than $1.
SELECT count(*)
FROM users
WHERE role = 'admin' AND is_active AND id <> $1
