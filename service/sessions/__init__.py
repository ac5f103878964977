"""Sessions: one per login, a family of rotating refresh tokens; listing and ending them.

refresh_tokens.py starts, rotates and logs out a session's refresh family; service.py lists and
ends sessions (the caller's own, or all of a user's for an admin); routes.py serves
/api/auth/sessions.
"""
