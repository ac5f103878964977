"""Local accounts: register, log in (password, lockout), the caller's own profile and password, and
the refresh-token cookie for browsers."""
