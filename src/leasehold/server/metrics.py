"""Prometheus metrics of ``leasehold serve`` (``/metrics``, no token: counts only, never task ids
or actors).

- ``leasehold_leases_held``: valid leases now (read at scrape time).
- ``leasehold_grants_total``, ``leasehold_takeovers_total`` (a grant over an expired lease),
  ``leasehold_expirations_total``: tallied from the ledger's event log since this process
  started, so they count every client's changes, direct ones included (every server process
  reports the same ledger-wide figures: do not sum them across processes).
- ``leasehold_refusals_total{reason}``: refused requests of this process, by error type.
- ``leasehold_waiters``: requests of this process blocked in ``claim --wait`` / ``next --wait``.
- ``leasehold_request_seconds{route}``: request latency per operation.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Metrics:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.held = Gauge("leasehold_leases_held", "Valid leases now", registry=r)
        self.grants = Counter("leasehold_grants", "Leases granted (new grants and renewals)", registry=r)
        self.takeovers = Counter("leasehold_takeovers", "Grants over another holder's expired lease", registry=r)
        self.expirations = Counter("leasehold_expirations", "Leases cleared by a sweep after expiry", registry=r)
        self.refusals = Counter("leasehold_refusals", "Refused requests by reason", ["reason"], registry=r)
        self.waiters = Gauge("leasehold_waiters", "Requests blocked waiting for a lease", registry=r)
        self.latency = Histogram("leasehold_request_seconds", "Request latency by route", ["route"],
                                 registry=r)
        self._last_event: int | None = None
        self._lock = threading.Lock()

    def _tally(self) -> None:
        ledger = self.service.ledger()
        with self._lock:
            if self._last_event is None:
                newest = ledger.events(None, 1)
                self._last_event = newest[-1].id if newest else 0
                return
            for event in ledger.events(None, None, self._last_event):
                self._last_event = event.id
                if event.kind == "claimed":
                    self.grants.inc()
                    if event.details.get("previous_holder"):
                        self.takeovers.inc()
                elif event.kind == "expired":
                    self.expirations.inc()

    def render(self) -> tuple[bytes, str]:
        ledger = self.service.ledger()
        self.held.set(len(ledger.store.active_leases()))
        self._tally()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
