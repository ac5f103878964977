-- Whether a local account other than $2 holds this lowercased email.
SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1 AND provider = 'local' AND id <> $2) AS taken
