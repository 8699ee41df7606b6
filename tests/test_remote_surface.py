"""The remote client covers the ledger's whole surface: every public method of
:class:`~leasehold.ledger.Ledger` (and of the feed, tickets and tokens objects) that reads or
writes the store has a remote counterpart, else is listed here as safe to inherit with the
reason; and every store call the domain modules and hooks make on ``ledger.store`` exists on
:class:`~leasehold.remote.RemoteStore`. A method added to the ledger without either fails here,
before it fails through a server."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from leasehold.feed import Feed
from leasehold.ledger import Ledger
from leasehold.remote import RemoteFeed, RemoteLedger, RemoteStore, RemoteTickets, RemoteTokens
from leasehold.tickets import Tickets
from leasehold.tokens import Tokens

SRC = Path(__file__).resolve().parent.parent / "src" / "leasehold"

#: Ledger methods RemoteLedger inherits on purpose: name -> why that works remotely.
LEDGER_INHERITED = {
    "open": "classmethod: opens a RemoteLedger for an http(s) URL",
    "from_settings": "classmethod: opens a RemoteLedger for an http(s) URL",
    "ttl_seconds": "pure: parses a TTL, no store",
    "show": "calls status(), which is remote",
    "hold": "claim/extend/release/complete from a thread, all remote",
}

#: Methods of the domain objects the remote ones need not have: name -> why.
FEED_LOCAL_ONLY = {
    "parse_import": "the server parses an import (feed_import sends the lines)",
    "import_posts": "the server imports (RemoteFeed.import_file sends the lines)",
    "queue_by_reduction": "an O(history) reference for tests and operators, run where the ledger is",
    "drift_by_reduction": "an O(history) reference for tests and operators, run where the ledger is",
}
TICKETS_LOCAL_ONLY: dict[str, str] = {}
TOKENS_LOCAL_ONLY = {"verify": "the server checks tokens; a client only presents one"}
#: ``ledger.store`` calls RemoteStore need not provide: name -> why.
STORE_LOCAL_ONLY = {"grant_role": "'db grant' refuses a store whose dialect is not postgres first (exit 2)"}


def public_methods(cls: type) -> dict[str, object]:
    return {name: member for name, member in vars(cls).items()
            if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, (classmethod,
                                                                                            staticmethod,
                                                                                            property)))}


def _source(member: object) -> str:
    if isinstance(member, (classmethod, staticmethod)):
        member = member.__func__
    if isinstance(member, property):
        member = member.fget
    return inspect.getsource(member)  # type: ignore[arg-type]


def test_remote_ledger_overrides_every_ledger_method_that_reaches_the_store() -> None:
    missing = []
    for name, member in public_methods(Ledger).items():
        if name in vars(RemoteLedger):
            continue
        if name not in LEDGER_INHERITED:
            missing.append(name)
        elif "self.store" in _source(member):
            missing.append(f"{name} (listed as inherited, but it reads self.store)")
    assert not missing, f"RemoteLedger lacks: {missing}: add a wire operation (wire.OPS) or list it with a reason"
    stale = sorted(set(LEDGER_INHERITED) - set(public_methods(Ledger)))
    assert not stale, f"listed but no longer on Ledger: {stale}"


def test_remote_overrides_take_the_same_parameters() -> None:
    """Same names, kinds and defaults as the local method (callers pass them by keyword)."""
    def shape(func: object) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]  # type: ignore[arg-type]

    differ = []
    for name, member in public_methods(Ledger).items():
        remote = vars(RemoteLedger).get(name)
        if remote is None or not inspect.isfunction(member) or not inspect.isfunction(remote):
            continue
        if shape(member) != shape(remote):
            differ.append(name)
    assert not differ, f"RemoteLedger methods with other parameters than Ledger's: {differ}"


@pytest.mark.parametrize(("local", "remote", "local_only"), [
    (Feed, RemoteFeed, FEED_LOCAL_ONLY), (Tickets, RemoteTickets, TICKETS_LOCAL_ONLY),
    (Tokens, RemoteTokens, TOKENS_LOCAL_ONLY),
], ids=["feed", "tickets", "tokens"])
def test_remote_domain_objects_cover_the_local_ones(local: type, remote: type, local_only: dict[str, str]) -> None:
    missing = [name for name in public_methods(local) if not hasattr(remote, name) and name not in local_only]
    assert not missing, f"{remote.__name__} lacks {missing}: add a wire operation or list it with a reason"
    stale = sorted(set(local_only) - set(public_methods(local)))
    assert not stale, f"listed but no longer on {local.__name__}: {stale}"


def _store_calls(path: Path) -> set[str]:
    """Attribute names called on ``<x>.store`` or a name ``store`` in a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            base = node.value
            if (isinstance(base, ast.Attribute) and base.attr == "store"
                    and not (isinstance(base.value, ast.Name) and base.value.id == "self")):
                found.add(node.attr)
            elif isinstance(base, ast.Name) and base.id == "store":
                found.add(node.attr)
    return found


def test_store_calls_outside_the_domain_exist_on_the_remote_store() -> None:
    """Modules that reach past the ledger to ``ledger.store`` (paths, hooks, missions, CLI) only
    call what RemoteStore provides (or run on the server only)."""
    server_side = {"server", "store"}
    remote = RemoteStore(None)  # type: ignore[arg-type]
    missing = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        # ops.py: run_op runs where the ledger is (Ledger, Tickets, Feed); the remote ones send
        # the operation id to the server, which runs it there
        if rel.parts[0] in server_side or rel.name in ("ledger.py", "remote.py", "verify.py", "doctor.py",
                                                        "ops.py"):
            continue
        lacking = sorted(name for name in _store_calls(path) if not hasattr(remote, name) and name not in STORE_LOCAL_ONLY)
        if lacking:
            missing[str(rel)] = lacking
    assert not missing, f"store calls RemoteStore lacks: {missing}"
