"""User administration: list, read, change and delete users, a user's sessions, and
`service create-admin`."""
