"""Regex patterns for msgspec `Meta` and Litestar parameters, which OpenAPI publishes to clients.

Python's `$` also matches just before a final newline, so `^[a-z]+$` accepts "eve\\n", while the
same pattern in ECMAScript (the dialect of OpenAPI's `pattern`) does not; ECMAScript has no `\\Z`.
A lookahead that no character follows is the end of the string in both, so `whole()` uses it.
"""

from __future__ import annotations

END_OF_STRING = r"(?![\s\S])"


def whole(body: str) -> str:
    """A pattern the entire string must match, read alike by Python and ECMAScript."""
    return f"^(?:{body}){END_OF_STRING}"


NO_NUL = whole(r"[^\x00]*")
NO_CONTROL_CHARACTERS = whole(r"[^\x00-\x1f\x7f]*")
