"""API tokens over named queries (``sql/tokens.sql``): a mixin of
:class:`~leasehold.store.sqlbase.SQLStore`.

The store keeps a token's SHA-256 hash, never the token. Creating and revoking append
``token_created`` / ``token_revoked`` events in the same transaction (``task_id`` NULL; the token
id, its actor and role in the details; never the hash).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class TokensSQL:
    """Token rows: insert, look up by hash or id, list, revoke."""

    if TYPE_CHECKING:
        def _write(self) -> Any: ...
        def _read(self) -> Any: ...

    def create_token(self, token_id: str, token_hash: str, actor: str, role: str,
                     expires_at: float | None, by_actor: str | None,
                     by_session: str | None) -> dict[str, Any]:
        """Insert a token row and its ``token_created`` event; returns the row."""
        with self._write() as tx:
            tx.run("insert_token", id=token_id, hash=token_hash, actor=actor, role=role,
                   expires_at=expires_at, created_by=by_actor)
            tx.event("token_created", None, by_actor, by_session, None, token_id=token_id,
                     token_actor=actor, role=role, expires_at=expires_at)
            return dict(tx.one("token_by_id", id=token_id))

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        """The row whose hash is ``token_hash``, or None."""
        with self._read() as tx:
            row = tx.one("token_by_hash", hash=token_hash)
        return dict(row) if row else None

    def list_tokens(self) -> list[dict[str, Any]]:
        with self._read() as tx:
            return [dict(row) for row in tx.all("list_tokens")]

    def revoke_token(self, token_id: str, by_actor: str | None,
                     by_session: str | None) -> tuple[dict[str, Any] | None, bool]:
        """Revoke a token. Returns ``(row, revoked_now)``: ``(None, False)`` for an unknown id,
        ``(row, False)`` when it was already revoked (nothing written)."""
        with self._write() as tx:
            if tx.run("revoke_token", id=token_id) != 1:
                row = tx.one("token_by_id", id=token_id)
                return (dict(row) if row else None), False
            row = dict(tx.one("token_by_id", id=token_id))
            tx.event("token_revoked", None, by_actor, by_session, None, token_id=token_id,
                     token_actor=row["actor"], role=row["role"])
            return row, True
