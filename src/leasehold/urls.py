"""Ledger URLs for people: the password is never shown.

A PostgreSQL URL may carry a password (``postgresql://user:secret@host/db`` or
``?password=secret``). Everything that prints a ledger URL (``whoami``, ``init``, ``demo``, every
error message) passes it through :func:`redact`, and error text that may quote it through
:func:`scrub`. No imports at module level: the CLI and the hooks load this on error paths.
"""

from __future__ import annotations

MASK = "***"


def _userinfo_password(url: str) -> tuple[int, int] | None:
    """``(start, end)`` of the password in ``scheme://user:password@host...``, or None.

    The password runs from the first ``:`` of the user info to the *last* ``@`` of the URL:
    a password pasted without percent-encoding may hold ``@ / ? #`` (RFC 3986 forbids them
    there, but generated passwords have them), and showing too little beats showing it."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    first_at = url.find("@", start)
    if first_at < 0:
        return None
    colon = url.find(":", start, first_at)
    if colon < 0:
        return None
    return colon + 1, url.rfind("@")


def passwords(url: str) -> list[str]:
    """The password(s) ``url`` carries, as written and percent-decoded (empty when none)."""
    found: list[str] = []
    span = _userinfo_password(url)
    if span is not None and span[1] > span[0]:
        found.append(url[span[0]:span[1]])
    query = url.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if sep and key.lower() == "password" and value:
            found.append(value)
    if any("%" in p or "+" in p for p in found):
        from urllib.parse import unquote, unquote_plus

        found += [unquote(p) for p in found] + [unquote_plus(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (in the user info and in a ``password=``
    query parameter); any other text is returned unchanged."""
    if "://" not in url:
        return url
    span = _userinfo_password(url)
    if span is not None and span[1] > span[0]:
        url = url[:span[0]] + MASK + url[span[1]:]
    base, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    parts = []
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        parts.append(f"{key}={MASK}" if eq and key.lower() == "password" and value else part)
    return base + "?" + "&".join(parts) + hash_sep + fragment


def scrub(text: str, url: str | None) -> str:
    """``text`` with every password ``url`` carries (as written or decoded) replaced by
    ``***``, and ``url`` itself shown redacted. A password of fewer than 4 characters is
    replaced only where it appears as one (``:PW@``, ``password=PW``), so that it does not
    mangle every word that contains it."""
    if not url or "://" not in url:
        return text
    secrets = passwords(url)
    if not secrets:
        return text
    text = text.replace(url, redact(url))
    for secret in secrets:
        text = text.replace(f":{secret}@", f":{MASK}@").replace(f"password={secret}", f"password={MASK}")
        if len(secret) >= 4:  # anywhere; a shorter one would mangle ordinary words
            text = text.replace(secret, MASK)
    # a password with unencoded "@", "/", "?", "#" or ":" makes libpq misparse the URL, and its
    # messages then quote the pieces (a "host" that is the password's tail)
    for secret in secrets:
        for piece in sorted(_pieces(secret), key=len, reverse=True):
            text = text.replace(piece, MASK)
    return text


def _pieces(secret: str) -> set[str]:
    """The parts (4 characters or more) of ``secret`` between URL delimiters."""
    for stop in "@/?#:":
        secret = secret.replace(stop, " ")
    return {piece for piece in secret.split() if len(piece) >= 4}


def split(url: str) -> tuple[str, str]:
    """``("postgres", url)`` or ``("sqlite", path)`` for a ledger URL. SQLite forms: ``PATH``,
    ``sqlite:PATH`` and ``sqlite://PATH`` (relative or absolute as written), and
    ``sqlite:///ABS/PATH`` (absolute, as in ``file:///``). Raises ``ValueError`` with the reason
    for an empty SQLite path or an unknown scheme."""
    scheme, sep, _ = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return "postgres", url
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"database URL {url!r} names no file")
        return "sqlite", path
    if sep:
        raise ValueError(f"database URL {redact(url)!r} has an unknown scheme {scheme!r}; use a "
                         "path, sqlite:///abs/path, sqlite:rel/path or postgresql://...")
    if not url:
        raise ValueError("the database URL is empty")
    return "sqlite", url
