"""schemathesis against ``/openapi.json`` of a real server (an in-thread uvicorn on a loopback
port) with a valid admin token: no 5xx, and every status code, content type and body matches
the document. A few examples per operation here; ``make fuzz`` sets LEASEHOLD_API_FUZZ_EXAMPLES
higher."""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server import ServerThread, make_token  # noqa: E402

EXAMPLES = int(os.environ.get("LEASEHOLD_API_FUZZ_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def api(tmp_path_factory):  # type: ignore[no-untyped-def]
    db = str(tmp_path_factory.mktemp("fuzz") / "ledger.db")
    token = make_token(db, "alice", "admin")
    server = ServerThread(db)
    server.token = token  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(api):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_url(api.url + "/openapi.json")


def test_api_matches_its_document(api) -> None:  # type: ignore[no-untyped-def]
    from hypothesis import given

    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/events":
            continue  # an endless stream: tested in test_serve.py
        checked.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 10,
                  suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:  # type: ignore[no-untyped-def]
            if isinstance(case.body, dict) and isinstance(case.body.get("wait"), (int, float)):
                case.body["wait"] = min(abs(case.body["wait"]), 0.05) or None  # never block the run
            case.call_and_validate(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"},
                                   checks=[not_a_server_error, status_code_conformance,
                                           content_type_conformance, response_schema_conformance])

        run()
    assert len(checked) >= 40, checked
