"""Identities from external providers (Supabase Auth, Better Auth) and the users linked to them."""
