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
# Text of several lines: tab, line feed and carriage return, but no other C0 control or DEL.
NO_CONTROL_CHARACTERS_BUT_LINE_BREAKS = whole(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*")
# Whitespace that is not a control character, listed rather than written `\s`: Python's `\s`
# also matches U+001C-U+001F and U+0085 and not U+FEFF, ECMAScript's the other way round.
_BLANK = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# Something other than blanks, which around it are kept; no control character (a title).
# The three parts match disjoint characters, so no input makes the pattern backtrack.
NOT_BLANK_NO_CONTROL_CHARACTERS = whole(rf"[{_BLANK}]*[^{_BLANK}\x00-\x1f\x7f][^\x00-\x1f\x7f]*")
