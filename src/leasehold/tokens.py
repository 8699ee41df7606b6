"""API tokens for ``leasehold serve``: who a network caller is, and what it may do.

- A token is ``lh_`` followed by 43 URL-safe characters: 256 random bits from :mod:`secrets`.
  It is shown once, when created; the ledger stores only its SHA-256 hash (a table of
  hashes lets nobody who reads the database act as a seat).
- Verification hashes the presented token, looks the hash up, and compares the stored hash with
  :func:`hmac.compare_digest` (constant time in the token's content); an unknown, revoked or
  expired token is refused with the same :class:`~leasehold.errors.PermissionDenied` message
  shape, so a caller learns nothing about other tokens.
- Roles: ``reader`` reads (and watches); ``agent`` also acts as its own actor (claim, extend,
  release, done, reserve, post, reserve paths); ``admin`` also force-releases with a reason and
  manages tokens. The actor of every call is the token's actor.
- Creating and revoking append ``token_created`` / ``token_revoked`` events.
"""

from __future__ import annotations

import hashlib
import hmac

from leasehold.errors import InvalidInput, NotFound, PermissionDenied
from leasehold.model import format_ts_precise, parse_duration, validate_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from leasehold.model import Holder
    from leasehold.store.sqlbase import SQLStore

ROLES = ("agent", "admin", "reader")
#: Roles in order of power: each may do what the ones before it may.
RANK = {"reader": 0, "agent": 1, "admin": 2}
PREFIX = "lh_"
#: Longest --expires: ten years.
MAX_EXPIRES = 10 * 365 * 86400.0


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored for ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenInfo:
    """A token's row without its secret: ``id`` (public, for list and revoke), ``actor``,
    ``role``, ``created_at`` / ``expires_at`` / ``revoked_at`` (UTC seconds or None),
    ``created_by``."""

    __slots__ = ("id", "actor", "role", "created_at", "expires_at", "revoked_at", "created_by")
    id: str
    actor: str
    role: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    created_by: str | None

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TokenInfo:
        return cls(**{name: row.get(name) for name in cls.__slots__})

    def state(self, now: float) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def may(self, role: str) -> bool:
        """True when this token's role includes ``role``'s rights."""
        return RANK[self.role] >= RANK[role]

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def to_dict(self, now: float) -> dict[str, Any]:
        """The documented JSON shape (``token list --json``)."""
        return {
            "id": self.id, "actor": self.actor, "role": self.role,
            "state": self.state(now),
            "created_at": format_ts_precise(self.created_at),
            "expires_at": format_ts_precise(self.expires_at),
            "revoked_at": format_ts_precise(self.revoked_at),
            "created_by": self.created_by,
        }


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def expires_seconds(text: str | float | int | None) -> float | None:
    """``--expires`` (``90d``, ``12h``, seconds) as seconds, or None for a token that never
    expires. Raises :class:`InvalidInput`."""
    if text is None or text == "" or text == "never":
        return None
    seconds = parse_duration(text, "--expires")
    if seconds > MAX_EXPIRES:
        raise InvalidInput(f"--expires is at most 3650d, got {text!r}")
    return seconds


class Tokens:
    """Token management and verification on a store."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store

    def create(self, actor: str, role: str = "agent", expires: float | None = None,
               by: Holder | None = None) -> tuple[TokenInfo, str]:
        """Create a token for ``actor`` with ``role``, expiring ``expires`` seconds from now
        (None: never). Returns ``(info, token)``: the token is not stored and cannot be shown
        again. Raises :class:`InvalidInput`."""
        import secrets

        validate_name(actor, "actor")
        validate_role(role)
        if expires is not None and not 0 < expires <= MAX_EXPIRES:
            raise InvalidInput(f"expires must be between 1s and 3650d, got {expires}")
        token = PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(6)
        expires_at = None if expires is None else self.store.now() + expires
        row = self.store.create_token(token_id, hash_token(token), actor, role, expires_at,
                                      by.actor if by else None, by.session if by else None)
        return TokenInfo.from_row(row), token

    def list(self) -> list[TokenInfo]:
        """Every token ever created (none is deleted), oldest first."""
        return [TokenInfo.from_row(row) for row in self.store.list_tokens()]

    def revoke(self, token_id: str, by: Holder | None = None) -> tuple[TokenInfo, bool]:
        """Revoke a token by id. Returns ``(info, revoked_now)`` (False when it was already
        revoked). Raises :class:`NotFound`."""
        row, revoked = self.store.revoke_token(token_id, by.actor if by else None,
                                               by.session if by else None)
        if row is None:
            raise NotFound(f"token {token_id} not found")
        return TokenInfo.from_row(row), revoked

    def verify(self, token: str | None) -> TokenInfo:
        """The active token ``token`` names. Raises :class:`PermissionDenied` (no token, an
        unknown, revoked or expired one)."""
        if not token:
            raise PermissionDenied("no token: send 'Authorization: Bearer TOKEN' (see 'leasehold token create')")
        wanted = hash_token(token)
        row = self.store.token_by_hash(wanted)
        if row is None or not hmac.compare_digest(str(row["hash"]), wanted):
            raise PermissionDenied("invalid token")
        info = TokenInfo.from_row(row)
        state = info.state(self.store.now())
        if state != "active":
            raise PermissionDenied(f"token {info.id} is {state}")
        return info
