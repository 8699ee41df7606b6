"""``leasehold serve``: run the ledger as an HTTP service (needs the ``server`` extra)."""

from __future__ import annotations

from leasehold.cli.common import Context, add_command
from leasehold.errors import ConfigError, InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name given to --host) binds loopback only: a loopback
    address (``127.0.0.0/8``, ``::1``) or the name ``localhost``. Any other name is not, even
    one that starts with ``127.`` (it may resolve anywhere)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(ctx: Context) -> int:
    args = ctx.args
    if args.anonymous_loopback and not is_loopback(args.host):
        raise InvalidInput(f"--anonymous-loopback binds loopback addresses only, not {args.host!r}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise InvalidInput("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise InvalidInput(f"--port must be 0-65535, got {args.port}")
    if args.workers < 1:
        raise InvalidInput(f"--workers must be at least 1, got {args.workers}")
    if not 1024 <= args.max_body <= 2**31:
        raise InvalidInput(f"--max-body must be between 1024 and 2147483648 bytes, got {args.max_body}")
    db = ctx.settings.db
    if db.startswith(("http://", "https://")):
        raise InvalidInput(f"serve needs a SQLite or PostgreSQL ledger, not another server ({db})")
    try:
        import jinja2  # noqa: F401  (the dashboard's templates)
        import uvicorn

        import leasehold.server.app  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"leasehold serve needs the server extra: pip install 'leasehold[server]' ({exc})") from None
    import os

    if args.workers > 1 and not db.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("--workers > 1 needs a PostgreSQL ledger (waits are woken in-process over SQLite)")
    os.environ["LEASEHOLD_SERVE_DB"] = db
    os.environ["LEASEHOLD_SERVE_ANONYMOUS"] = "1" if args.anonymous_loopback else ""
    os.environ["LEASEHOLD_SERVE_MAX_BODY"] = str(args.max_body)
    # The key of the dashboard's CSRF tokens when there is no session token: one for all the
    # worker processes (each would otherwise refuse the forms the others rendered).
    os.environ["LEASEHOLD_SERVE_SECRET"] = os.urandom(32).hex()
    os.environ["LEASEHOLD_SERVE_HOST"] = args.host  # /mcp's loopback Host check (anonymous)
    # Open the ledger once here: a bad URL is one line and its exit code, not a worker crash.
    from leasehold.ledger import Ledger

    Ledger.from_settings(ctx.settings).close()
    if args.tls_cert:
        # Load the pair here: a missing or bad file is one line and exit 78, not a traceback.
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load --tls-cert {args.tls_cert} / --tls-key {args.tls_key}: {exc}") from None
    if not args.tls_cert and not is_loopback(args.host):
        ctx.say(f"leasehold serve: warning: plain HTTP on {args.host}, a non-loopback address: tokens travel "
                "in clear text; use --tls-cert/--tls-key or a TLS-terminating proxy")
    shown = f"[{args.host}]" if ":" in args.host else args.host  # an IPv6 address in a URL
    ctx.say(f"leasehold serve: {db} on {'https' if args.tls_cert else 'http'}://{shown}:{args.port} "
            f"({args.workers} worker{'s' if args.workers != 1 else ''})")
    try:
        uvicorn.run("leasehold.server.asgi:app", host=args.host, port=args.port, workers=args.workers,
                    ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key, log_level=args.log_level,
                    access_log=args.log_level == "debug", lifespan="on", timeout_graceful_shutdown=5)
    except SystemExit as exc:
        # uvicorn exits 3 when it cannot start (e.g. the address is in use): that code is
        # "not found" here, so say it as a configuration error (78).
        if exc.code in (0, None):
            return 0
        raise ConfigError(f"leasehold serve could not start on {args.host}:{args.port} "
                          f"(uvicorn exit {exc.code}; its error is above)") from None
    return 0


def setup_serve(sub: Any) -> None:
    p = add_command(
        sub, "serve", func=cmd_serve, help="run the ledger as an authenticated HTTP service",
        description=(
            "Serve the ledger (--db, LEASEHOLD_DB or leasehold.toml: SQLite or PostgreSQL) over\n"
            "HTTP: the JSON API under /v1 (Bearer tokens: see 'leasehold token'), the event\n"
            "stream /v1/events, /healthz, /readyz, /metrics and /openapi.json, and a web\n"
            "dashboard at / (sign in with a token: who holds what, live; lease timelines;\n"
            "tickets; admin force-release and token revocation). Clients point\n"
            "LEASEHOLD_DB at http(s)://HOST:PORT and set LEASEHOLD_TOKEN. Several processes\n"
            "over one PostgreSQL are stateless peers (--workers N, or N machines behind a load\n"
            "balancer). Plain HTTP on a non-loopback --host prints a warning (tokens travel in\n"
            "clear text): use --tls-cert/--tls-key or a TLS-terminating proxy. Needs the server\n"
            "extra: pip install 'leasehold[server]'."
        ),
        examples=(
            "  leasehold serve --db postgresql://leasehold@db1/leasehold --host 0.0.0.0 --workers 4\n"
            "  leasehold serve --tls-cert /etc/leasehold/cert.pem --tls-key /etc/leasehold/key.pem\n"
            "  leasehold serve --max-body 8388608   # accept request bodies up to 8 MiB (large feed imports)\n"
            "  leasehold serve --port 7432 --anonymous-loopback   # local experiments only"
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7432, help="port (default 7432)")
    p.add_argument("--workers", type=int, default=1, help="server processes (default 1; >1 needs PostgreSQL)")
    p.add_argument("--tls-cert", metavar="FILE", help="TLS certificate (PEM): serve HTTPS")
    p.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    p.add_argument("--anonymous-loopback", action="store_true",
                   help="accept requests without a token as admin when addressed to localhost, 127.x.x.x "
                        "or [::1] (Host header); refuses any non-loopback --host")
    p.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES",
                   help="largest request body accepted (default 1048576 = 1 MiB; more is HTTP 413, exit 2)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                   help="server log level (default warning)")


COMMANDS = {"serve": setup_serve}
