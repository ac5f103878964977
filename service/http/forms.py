"""Reading form bodies (the login form, scan uploads) so that no form a client can send is a 500."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import FormMultiDict
from litestar.exceptions import ValidationException

UNDECODABLE_FORM = "form fields must be UTF-8 text"


async def read_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    """The parsed form. Litestar decodes each multipart part in the charset the part names and
    lets the errors escape: an unknown charset (LookupError) or bytes that are not text in it
    (UnicodeDecodeError) become a 400 here."""
    try:
        return await request.form()
    except (UnicodeDecodeError, LookupError):
        raise ValidationException(
            UNDECODABLE_FORM, extra=[{"key": "body", "message": UNDECODABLE_FORM, "source": "body"}]
        ) from None
