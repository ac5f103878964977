-- How many users list_users.sql matches with the same filters, across all pages.
SELECT count(*)
FROM users
WHERE ($1::text IS NULL
       OR email ILIKE '%' || replace(replace(replace($1, '\', '\\'), '%', '\%'), '_', '\_') || '%')
  AND ($2::text IS NULL OR role = $2)
  AND ($3::boolean IS NULL OR is_active = $3)
