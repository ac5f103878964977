"""The keyset cursor of the scan listing: an opaque token for the position (created_at, id)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from litestar.exceptions import ValidationException

MAX_CURSOR_CHARS = 200


def encode_cursor(created_at: datetime, scan_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{scan_id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor stands for; a cursor we did not issue is a 400."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        stamp, _, scan_id = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        # In UTC here, so a position no timestamp can hold is refused before the query.
        return created_at.astimezone(UTC), uuid.UUID(scan_id)
    except (ValueError, OverflowError):  # binascii.Error and UnicodeDecodeError included
        raise ValidationException(
            "invalid cursor",
            extra=[{"key": "cursor", "message": "not a cursor from this listing", "source": "query"}],
        ) from None
