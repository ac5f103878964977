"""One TLS context for every outbound HTTP client of a worker (the AI service, each identity provider)."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_tls_context() -> ssl.SSLContext:
    """What httpx builds for a client by default (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR),
    built once: httpx builds it anew for every client, loading about 150 CA certificates, 30-90 ms
    each time on a 2-core machine, paid by every app start for the AI service's client and per
    identity provider (the test suite starts an app per test: 8.7 s of 22 s in tests/providers)."""
    return httpx.create_ssl_context()
