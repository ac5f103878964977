"""Who is calling and what they may do: our tokens, passwords, JWKS and identity providers, token
verification, the caller and its cache, guards (how every protected route is authenticated), and
rate limits."""
