"""The application uvicorn imports in each worker process of ``leasehold serve`` (configured by
the environment the serve command sets: ``LEASEHOLD_SERVE_DB``, ``LEASEHOLD_SERVE_ANONYMOUS``, ``LEASEHOLD_SERVE_MAX_BODY``)."""

from __future__ import annotations

import os

from leasehold.server.app import DEFAULT_MAX_BODY, create_app

app = create_app(os.environ["LEASEHOLD_SERVE_DB"],
                 anonymous=bool(os.environ.get("LEASEHOLD_SERVE_ANONYMOUS")),
                 max_body=int(os.environ.get("LEASEHOLD_SERVE_MAX_BODY") or DEFAULT_MAX_BODY))
