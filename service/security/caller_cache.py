"""What authentication reads from the database, kept per worker while PostgreSQL tells us of changes.

Three maps, each a bounded LRU: identity (provider, subject) -> user id; user id -> the user's
role, active flag, `tokens_valid_after`, email and provider; access-token jti -> whether it was
revoked (until the token's `exp`). A request whose caller is in all three touches the database
only for its own query.

The cache answers only while it is *trusted*: the worker's listener (caller_listener.py) holds a
LISTEN connection that answered a heartbeat within the trust window. Every committed change to
those rows is announced by a trigger (migrations/0008.caller_changes.sql) and drops the entries
it names. Losing the listener (disconnect, missed heartbeat, database restart) empties the cache,
and until it is trusted again every request reads the database and nothing is stored.

A fill never stores a row that an invalidation overtook: the caller takes a `ticket()` (the
current generation) before its query and hands it to `store_*`, which stores only if no
invalidation, reset or loss of trust happened in between (each bumps the generation).
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import msgspec

log = logging.getLogger("service.caller_cache")

CHANNEL = "caller_changes"
DEFAULT_CAPACITY = 10_000

K = TypeVar("K")
V = TypeVar("V")


class CachedUser(msgspec.Struct, frozen=True):
    """The user columns authentication reads (sql/accounts/get_caller.sql)."""

    id: uuid.UUID
    email: str | None
    role: str
    provider: str
    is_active: bool
    tokens_valid_after: float

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> CachedUser:
        """From a row of sql/accounts/get_caller.sql (it has more columns: `revoked`)."""
        return cls(
            id=row["id"],
            email=row["email"],
            role=row["role"],
            provider=row["provider"],
            is_active=row["is_active"],
            tokens_valid_after=row["tokens_valid_after"],
        )


class _Lru(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: collections.OrderedDict[K, V] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self.entries.pop(key, None)


class CallerCache:
    """Per worker. `capacity` entries per map; 0 turns the cache off (every lookup misses)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.generation = 0
        self._trusted_until = 0.0  # time.monotonic(); 0: not trusted
        self._identities: _Lru[tuple[str, str], uuid.UUID] = _Lru(capacity)
        self._users: _Lru[uuid.UUID, CachedUser] = _Lru(capacity)
        # jti -> (revoked, the token's exp as a Unix time)
        self._tokens: _Lru[uuid.UUID, tuple[bool, float]] = _Lru(capacity)
        self.hits = 0
        self.misses = 0

    # -- trust (driven by the listener) -------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def trusted(self) -> bool:
        return time.monotonic() < self._trusted_until

    def trust_until(self, deadline: float) -> None:
        """The listener answered a heartbeat sent at `deadline - window`. Coming back from
        untrusted (first start, reconnect, a late heartbeat) starts from an empty cache, since
        announcements may have been missed meanwhile."""
        if not self.enabled:
            return
        if not self.trusted():
            self._reset()
        self._trusted_until = deadline

    def distrust(self) -> None:
        self._trusted_until = 0.0
        self._reset()

    # -- lookups and fills (driven by authenticate) -------------------------------------------

    def ticket(self) -> int | None:
        """Take before the query whose result goes to `store_*`; None: do not store."""
        return self.generation if self.trusted() else None

    def identity(self, provider: str, subject: str) -> uuid.UUID | None:
        if not self.trusted():
            return None
        return self._identities.get((provider, subject))

    def user(self, user_id: uuid.UUID) -> CachedUser | None:
        if not self.trusted():
            return None
        return self._users.get(user_id)

    def token_revoked(self, jti: uuid.UUID, now: float) -> bool | None:
        """True or False when known, None when the database must say."""
        if not self.trusted():
            return None
        entry = self._tokens.get(jti)
        if entry is None:
            return None
        if now >= entry[1]:
            self._tokens.pop(jti)
            return None
        return entry[0]

    def store_identity(self, ticket: int | None, provider: str, subject: str, user_id: uuid.UUID) -> None:
        if self._current(ticket):
            self._identities.put((provider, subject), user_id)

    def store_user(self, ticket: int | None, user: CachedUser) -> None:
        if self._current(ticket):
            self._users.put(user.id, user)

    def store_token(self, ticket: int | None, jti: uuid.UUID, revoked: bool, expires_at: float) -> None:
        if self._current(ticket):
            self._tokens.put(jti, (revoked, expires_at))

    def _current(self, ticket: int | None) -> bool:
        return ticket is not None and ticket == self.generation and self.trusted()

    # -- invalidation (driven by the listener's notifications) --------------------------------

    def invalidate(self, payload: str) -> None:
        """Apply one announcement from the `caller_changes` channel."""
        self.generation += 1
        kind, _, key = payload.partition(":")
        try:
            if kind == "u":
                self._users.pop(uuid.UUID(key))
            elif kind == "i":
                provider, _, subject = key.partition(":")
                self._identities.pop((provider, subject))
            elif kind == "t":
                jti = uuid.UUID(key)
                known = self._tokens.get(jti)
                if known is not None:
                    self._tokens.put(jti, (True, known[1]))
            else:
                self._reset()
        except ValueError:
            log.warning("unreadable caller-cache announcement %r: emptying the cache", payload[:100])
            self._reset()

    def _reset(self) -> None:
        self.generation += 1
        for lru in (self._identities, self._users, self._tokens):
            lru.entries.clear()

    def drain_counts(self) -> tuple[int, int]:
        """Hits and misses since the last call (for the metrics)."""
        counts = (self.hits, self.misses)
        self.hits = self.misses = 0
        return counts

    def __len__(self) -> int:
        return len(self._identities.entries) + len(self._users.entries) + len(self._tokens.entries)
