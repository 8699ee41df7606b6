"""API tokens on every backend: only a hash is stored, verification refuses unknown, revoked and
expired tokens, and create / revoke are events."""

from __future__ import annotations

import json

import pytest

from leasehold import Ledger
from leasehold.errors import InvalidInput, NotFound, PermissionDenied, Refused
from leasehold.tokens import hash_token


def test_create_verify_revoke(ledger: Ledger) -> None:
    info, token = ledger.tokens.create("alice", "agent", 3600)
    assert token.startswith("lh_") and len(token) >= 40
    assert ledger.tokens.verify(token).actor == "alice"
    assert ledger.tokens.verify(token).role == "agent"
    rows = ledger.store.list_tokens()
    assert rows[0]["hash"] == hash_token(token)
    assert token not in json.dumps(rows, default=str)  # only the hash is stored
    assert token not in json.dumps([e.to_dict() for e in ledger.events()])
    with pytest.raises(PermissionDenied):
        ledger.tokens.verify(token[:-1] + ("A" if token[-1] != "A" else "B"))
    with pytest.raises(PermissionDenied):
        ledger.tokens.verify(None)
    revoked, now = ledger.tokens.revoke(info.id)
    assert now and revoked.revoked_at is not None
    assert ledger.tokens.revoke(info.id)[1] is False
    with pytest.raises(PermissionDenied, match="revoked"):
        ledger.tokens.verify(token)
    with pytest.raises(NotFound):
        ledger.tokens.revoke("tok_nope")
    events = [e for e in ledger.events() if e.kind.startswith("token_")]
    assert [e.kind for e in events] == ["token_created", "token_revoked"]
    assert events[0].details["token_id"] == info.id and events[0].details["token_actor"] == "alice"


def test_expired_token_is_refused(db_url: str, clock) -> None:
    if not db_url.endswith(".db"):
        pytest.skip("the injected clock drives SQLite only (PostgreSQL uses the server's clock)")
    with Ledger.open(db_url, clock=clock) as ledger:
        _, token = ledger.tokens.create("alice", "reader", 60)
        assert ledger.tokens.verify(token).role == "reader"
        clock.advance(61)
        with pytest.raises(PermissionDenied, match="expired"):
            ledger.tokens.verify(token)
        assert ledger.tokens.list()[0].state(clock()) == "expired"


def test_bad_input_and_rows_are_never_deleted(ledger: Ledger) -> None:
    with pytest.raises(InvalidInput):
        ledger.tokens.create("alice", "root")
    with pytest.raises(InvalidInput):
        ledger.tokens.create("al:ice", "agent")
    with pytest.raises(InvalidInput):
        ledger.tokens.create("alice", "agent", 0)
    ledger.tokens.create("alice")
    store = ledger.store
    with pytest.raises(Refused):
        with store._write() as tx:
            tx.cursor.execute("DELETE FROM tokens")


def test_cli_token_create_list_revoke(cli) -> None:
    made = cli("token", "create", "--actor", "ci-bot", "--role", "reader", "--expires", "90d", "--json")
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert data["role"] == "reader" and data["token"].startswith("lh_") and "shown once" in made.stderr
    listed = json.loads(cli("token", "list", "--json").stdout)
    assert [t["id"] for t in listed] == [data["id"]] and "token" not in listed[0]
    assert cli("token", "revoke", data["id"]).returncode == 0
    assert json.loads(cli("token", "list", "--json").stdout)[0]["state"] == "revoked"
    assert cli("token", "revoke", "tok_missing").returncode == 3
    assert cli("token", "create", "--role", "agent").returncode == 2  # no --actor
    assert cli("token", "create", "--actor", "x", "--expires", "soon").returncode == 2
