"""Put leasehold's MCP server (``/abs/path/leasehold mcp``) into the configuration of Claude
Code, Codex CLI and Gemini CLI, and take it out again, changing nothing else in the file.

Files (the project root as for the hooks: the nearest folder above the working directory
holding ``.git``):

- Claude Code: ``project`` -> ``<root>/.mcp.json``, ``user`` -> ``~/.claude.json``; the entry
  is ``mcpServers.leasehold`` = ``{"type": "stdio", "command": EXE, "args": ["mcp"]}``.
- Codex CLI: ``project`` -> ``<root>/.codex/config.toml`` (read in a trusted project),
  ``user`` -> ``$CODEX_HOME/config.toml`` (``~/.codex``); the entry is the table
  ``[mcp_servers.leasehold]`` with ``command``, ``args`` and ``env_vars`` (Codex gives an MCP
  server only a short list of its own environment: leasehold's variables are named so that
  they reach it). Edited with tomlkit, which keeps comments and layout.
- Gemini CLI: ``project`` -> ``<root>/.gemini/settings.json``, ``user`` ->
  ``~/.gemini/settings.json`` (comments allowed, as Gemini CLI allows them); the entry is
  ``mcpServers.leasehold`` = ``{"command": EXE, "args": ["mcp"]}``.

The JSON files are edited in place as text: the entry's bytes are inserted, replaced or cut
out, every other byte stays (install then uninstall gives the file back byte for byte; a file
that install created and uninstall emptied is removed; a CRLF file gets CRLF lines). Install is
idempotent. An entry already there keeps its own settings (``env``, timeouts, ...): install
rewrites ``command`` and ``args`` (a remote entry's URL and headers go). Codex's
``[mcp_servers.leasehold]`` is appended as text at the end (an inline ``mcp_servers = {...}``
gets an inline entry). A file that does
not parse (or whose ``mcpServers`` is not an object) is refused with :class:`InvalidInput`
(exit 2) and left untouched.
"""

from __future__ import annotations

import json
import os

from leasehold.errors import InvalidInput, LeaseholdError
from leasehold.hooks.install import executable, project_root, write_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLIENTS = ("claude-code", "codex", "gemini")
SCOPES = ("project", "user")
NAME = "leasehold"
#: The variables Codex is told to pass on to the server (it passes few of its own).
CODEX_ENV_VARS = ["LEASEHOLD_DB", "LEASEHOLD_TOKEN", "LEASEHOLD_ACTOR", "LEASEHOLD_SESSION",
                  "LEASEHOLD_ENFORCE", "CODEX_THREAD_ID"]


def config_path(client: str, scope: str, cwd: str | None = None) -> str:
    """The configuration file of ``client`` in ``scope``. Raises :class:`InvalidInput` for an
    unknown client or scope."""
    if client not in CLIENTS:
        raise InvalidInput(f"unknown client {client!r}; use one of {', '.join(CLIENTS)}")
    if scope not in SCOPES:
        raise InvalidInput(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    home = os.path.expanduser("~")
    if client == "claude-code":
        return os.path.join(home, ".claude.json") if scope == "user" else os.path.join(project_root(cwd), ".mcp.json")
    if client == "codex":
        if scope == "user":
            return os.path.join(os.environ.get("CODEX_HOME") or os.path.join(home, ".codex"), "config.toml")
        return os.path.join(project_root(cwd), ".codex", "config.toml")
    if scope == "user":
        return os.path.join(home, ".gemini", "settings.json")
    return os.path.join(project_root(cwd), ".gemini", "settings.json")


#: The keys of a remote (Streamable HTTP) entry, which install's stdio entry replaces.
REMOTE_KEYS = ("type", "url", "httpUrl", "headers", "headersHelper", "oauth", "bearer_token_env_var",
               "http_headers", "env_http_headers")


def merged(current: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The entry install leaves: ``wanted`` over the settings of an existing entry that stay
    meaningful for a stdio server (``env``, ``cwd``, timeouts, tool filters, ...); a remote
    entry's URL and headers go."""
    if not isinstance(current, dict):
        return dict(wanted)
    out = {k: wanted.get(k, v) for k, v in current.items() if k in wanted or k not in REMOTE_KEYS}
    out.update(wanted)  # in place for keys already there, appended otherwise
    return out


def is_remote(current: Any) -> bool:
    """True for an entry that reaches a server by URL (no command to start)."""
    return isinstance(current, dict) and "command" not in current and bool(current.get("url") or current.get("httpUrl"))


def entry(client: str, exe: str) -> dict[str, Any]:
    """The server entry leasehold writes for ``client``."""
    if client == "claude-code":
        return {"type": "stdio", "command": exe, "args": ["mcp"]}
    if client == "codex":
        return {"command": exe, "args": ["mcp"], "env_vars": list(CODEX_ENV_VARS)}
    return {"command": exe, "args": ["mcp"]}


def _read(path: str) -> str | None:
    from leasehold.safefiles import read_regular

    try:  # a regular file of at most 16 MiB: never a FIFO or /dev/zero a repository links to
        raw = read_regular(path, 16 << 20)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}; nothing was changed") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start}); fix it first, nothing "
                           "was changed") from None


# -- JSON (and Gemini's JSON with comments), edited as text -------------------------------------
class _Json:
    """Spans of a JSON document's objects, found without rewriting anything: ``comments``
    allows ``//`` and ``/* */`` (Gemini CLI's settings)."""

    def __init__(self, path: str, text: str, comments: bool) -> None:
        self.path = path
        self.text = text
        self.comments = comments
        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in items]
            if len(set(keys)) != len(keys):
                twice = next(k for k in keys if keys.count(k) > 1)
                raise ValueError(f"the key {twice!r} appears twice in one object")
            return dict(items)

        try:
            data = json.loads(self._uncommented() if comments else text, object_pairs_hook=pairs)
        except ValueError as exc:
            raise InvalidInput(f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from None
        except RecursionError:
            raise InvalidInput(f"{path} is nested too deeply; nothing was changed") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} must hold a JSON object; nothing was changed")
        self.data = data

    def _uncommented(self) -> str:
        """The text with each comment replaced by spaces (offsets kept)."""
        out, i, text = [], 0, self.text
        while i < len(text):
            j = self._skip_string_or_comment(i)
            if j == i:
                out.append(text[i])
                i += 1
            else:
                chunk = text[i:j]
                out.append(chunk if chunk.startswith('"') else "".join(c if c == "\n" else " " for c in chunk))
                i = j
        return "".join(out)

    def _skip_string_or_comment(self, i: int) -> int:
        text = self.text
        if text.startswith('"', i):
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            return j + 1
        if self.comments and text.startswith("//", i):
            j = text.find("\n", i)
            return len(text) if j < 0 else j
        if self.comments and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            return len(text) if j < 0 else j + 2
        return i

    def skip(self, i: int) -> int:
        """The first offset at or after ``i`` that is neither white space nor a comment."""
        text = self.text
        while i < len(text):
            if text[i] in " \t\r\n":
                i += 1
                continue
            j = self._skip_string_or_comment(i) if text[i] == "/" else i
            if j == i:
                return i
            i = j
        return i

    def value_end(self, i: int) -> int:
        """The offset just after the value starting at ``i``."""
        text = self.text
        if text[i] == '"':
            return self._skip_string_or_comment(i)
        if text[i] in "{[":
            depth = 0
            while i < len(text):
                j = self._skip_string_or_comment(i)
                if j != i:
                    i = j
                    continue
                if text[i] in "{[":
                    depth += 1
                elif text[i] in "}]":
                    depth -= 1
                    if depth == 0:
                        return i + 1
                i += 1
            return i
        while i < len(text) and text[i] not in ",}] \t\r\n/":
            i += 1
        return i

    def members(self, start: int) -> tuple[list[tuple[str, int, int, int]], int]:
        """The members of the object whose ``{`` is at ``start``: ``[(key, key offset, value
        offset, value end)]``, and the offset of its ``}``."""
        out = []
        i = self.skip(start + 1)
        while self.text[i] != "}":
            key_end = self._skip_string_or_comment(i)
            key = json.loads(self.text[i:key_end])
            colon = self.skip(key_end)
            value = self.skip(colon + 1)
            end = self.value_end(value)
            out.append((key, i, value, end))
            i = self.skip(end)
            if self.text[i] == ",":
                i = self.skip(i + 1)
        return out, i

    def indent_at(self, offset: int) -> str:
        line = self.text.rfind("\n", 0, offset) + 1
        prefix = self.text[line:offset]
        return prefix if not prefix.strip() else ""


def _render(value: Any, indent: str, unit: int = 2) -> str:
    return json.dumps(value, indent=unit, ensure_ascii=False).replace("\n", "\n" + indent)


def _line_indent(text: str, offset: int) -> str:
    """The white space that starts the line holding ``offset``."""
    line = text.rfind("\n", 0, offset) + 1
    seg = text[line:offset]
    return seg[:len(seg) - len(seg.lstrip(" \t"))]


def _unit(doc: _Json, obj: int, member_indent: str) -> int:
    """The file's indentation step: its members' indent beyond their object's line (else 2)."""
    step = len(member_indent) - len(_line_indent(doc.text, obj))
    return step if 0 < step <= 8 else 2


def _insert_member(doc: _Json, obj: int, key: str, value: Any) -> str:
    """The text with ``key: value`` added as the last member of the object at ``obj``."""
    members, close = doc.members(obj)
    text = doc.text
    if members:
        indent = doc.indent_at(members[0][1]) or _line_indent(text, obj) + "  "
        last_end = members[-1][3]
        piece = f",\n{indent}{json.dumps(key)}: {_render(value, indent, _unit(doc, obj, indent))}"
        return text[:last_end] + _nl(text, piece) + text[last_end:]
    outer = _line_indent(text, obj)
    parent_members = doc.members(doc.skip(0))[0]
    unit = _unit(doc, doc.skip(0), doc.indent_at(parent_members[0][1])) if parent_members else 2
    indent = outer + " " * unit
    piece = f"\n{indent}{json.dumps(key)}: {_render(value, indent, unit)}\n{outer}"
    return text[:obj + 1] + _nl(text, piece) + text[obj + 1:]


def _remove_member(doc: _Json, obj: int, key: str) -> str:
    """The text without member ``key`` of the object at ``obj`` (the inverse of
    :func:`_insert_member`)."""
    members, close = doc.members(obj)
    text = doc.text
    k = next(n for n, m in enumerate(members) if m[0] == key)
    if len(members) == 1:
        _, key_at, _, end = members[0]
        if not (text[obj + 1:key_at] + text[end:close]).strip():
            return text[:obj + 1] + text[close:]
        # Comments share the object: only the member goes, with the line break and indent
        # that install put before the closing brace.
        after = text[end:]
        for trailer in ("\r\n" + _line_indent(text, obj), "\n" + _line_indent(text, obj)):
            if after.startswith(trailer):
                after = after[len(trailer):]
                break
        return (text[:key_at] if text[obj + 1:key_at].strip() else text[:obj + 1]) + after
    if k == len(members) - 1:
        return text[:members[k - 1][3]] + text[members[k][3]:]
    return text[:members[k][1]] + text[members[k + 1][1]:]


def _json_state(path: str, client: str) -> tuple[_Json | None, Any]:
    text = _read(path)
    if text is None or not text.strip():
        return None, None
    doc = _Json(path, text, comments=client == "gemini")
    servers = doc.data.get("mcpServers")
    if "mcpServers" in doc.data and not isinstance(servers, dict):
        raise InvalidInput(f"{path}: 'mcpServers' must be an object; nothing was changed")
    return doc, (servers or {}).get(NAME)


def _json_install(path: str, client: str, wanted: dict[str, Any]) -> bool:
    doc, current = _json_state(path, client)
    if doc is None:
        text = _read(path) or ""
        write_bytes(path, (text + json.dumps({"mcpServers": {NAME: wanted}}, indent=2) + "\n").encode())
        return True
    wanted = merged(current, wanted)
    if current == wanted:
        return False
    root = doc.skip(0)
    top, _ = doc.members(root)
    servers = next((m for m in top if m[0] == "mcpServers"), None)
    if servers is None:
        text = _insert_member(doc, root, "mcpServers", {NAME: wanted})
    elif current is None:
        text = _insert_member(doc, servers[2], NAME, wanted)
    else:
        members, _ = doc.members(servers[2])
        _, key_at, start, end = next(m for m in members if m[0] == NAME)
        indent = doc.indent_at(key_at) or _line_indent(doc.text, key_at)
        text = doc.text[:start] + _nl(doc.text, _render(wanted, indent, _unit(doc, servers[2], indent))) + doc.text[end:]
    try:  # never write a file the runtime could not read, or one without our entry as wanted
        ok = _Json(path, text, comments=client == "gemini").data["mcpServers"][NAME] == wanted
    except (LeaseholdError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidInput(f"cannot add leasehold's entry to {path} in its present layout; add "
                           "mcpServers.leasehold by hand (see 'leasehold mcp show'); nothing was changed")
    write_bytes(path, text.encode("utf-8"))
    return True


def _nl(text: str, piece: str) -> str:
    """``piece`` (inserted into ``text``) with ``text``'s line breaks: a CRLF file stays CRLF."""
    return piece.replace("\n", "\r\n") if "\r\n" in text else piece


def _json_uninstall(path: str, client: str) -> bool:
    doc, current = _json_state(path, client)
    if doc is None or current is None:
        return False
    root = doc.skip(0)
    top, _ = doc.members(root)
    servers = next(m for m in top if m[0] == "mcpServers")
    text = _remove_member(doc, servers[2], NAME)
    doc = _Json(path, text, comments=client == "gemini")
    emptied = next(m for m in doc.members(root)[0] if m[0] == "mcpServers")
    if text[emptied[2]:emptied[3]] == "{}":  # mcpServers is empty now (no comment in it): take it out too
        text = _remove_member(doc, root, "mcpServers")
        if text.strip() == "{}":  # nothing else was in the file: install created it
            os.remove(path)
            return True
    write_bytes(path, text.encode("utf-8"))
    return True


# -- TOML (Codex), with tomlkit ------------------------------------------------------------------
def _toml_doc(path: str) -> tuple[Any, str | None]:
    try:
        import tomlkit
    except ImportError as exc:
        from leasehold.errors import ConfigError

        raise ConfigError(f"editing Codex's config.toml needs tomlkit: pip install 'leasehold[server]' ({exc})") from None
    text = _read(path)
    try:
        doc = tomlkit.parse(text or "")
    except Exception as exc:  # tomlkit's ParseError and friends
        raise InvalidInput(f"{path} is not valid TOML ({exc}); fix it first, nothing was changed") from None
    servers = doc.get("mcp_servers")
    if servers is not None and not isinstance(servers, dict):
        raise InvalidInput(f"{path}: 'mcp_servers' must be a table; nothing was changed")
    return doc, text


def _toml_current(doc: Any) -> Any:
    servers = doc.get("mcp_servers")
    found = None if servers is None else servers.get(NAME)
    return None if found is None else json.loads(json.dumps(found))


def _toml_install(path: str, wanted: dict[str, Any]) -> bool:
    import tomlkit

    doc, text = _toml_doc(path)
    current = _toml_current(doc)
    wanted = merged(current, wanted)
    if current == wanted:
        return False
    text = text or ""
    servers = doc.get("mcp_servers")
    if servers is not None and NAME in servers and not isinstance(servers[NAME], dict):
        # leasehold = "something" (not a table): replaced by our table
        if isinstance(servers, tomlkit.items.InlineTable):
            inline = tomlkit.inline_table()
            inline.update(wanted)
            servers[NAME] = inline
        else:
            servers[NAME] = _toml_table(wanted)
        out = tomlkit.dumps(doc)
    elif servers is not None and NAME in servers:
        # An entry is there (another path, a remote one, or written by hand): its keys are
        # rewritten in place, so that its comments, sub-tables (env) and layout stay.
        found = servers[NAME]
        for key in [k for k in found if k not in wanted]:
            if key in REMOTE_KEYS:
                del found[key]
        for key, value in wanted.items():
            if json.loads(json.dumps(found.get(key))) != value:
                found[key] = value
        out = tomlkit.dumps(doc)
    elif isinstance(servers, tomlkit.items.InlineTable):
        # mcp_servers = { ... } on one line: our entry joins it, inline too.
        inline = tomlkit.inline_table()
        inline.update(wanted)
        servers[NAME] = inline
        out = tomlkit.dumps(doc)
    else:
        # [mcp_servers.leasehold] appended as text after everything else (one blank line
        # between; a table header may come anywhere), so that uninstall cuts exactly these
        # bytes out again.
        sep = "" if not text.strip() else ("\n" if text.endswith("\n") else "\n\n")
        out = text + _nl(text, sep + _toml_block(_toml_table(wanted)))
    try:  # never write a file Codex could not read, or one without our entry as wanted
        ok = _toml_current(tomlkit.parse(out)) == wanted
    except Exception:
        ok = False
    if not ok:
        raise InvalidInput(f"cannot add leasehold's entry to {path} in its present layout; add "
                           f"[mcp_servers.leasehold] by hand (see 'leasehold mcp show'); nothing was changed")
    write_bytes(path, out.encode("utf-8"))
    return True


def _toml_table(values: dict[str, Any]) -> Any:
    import tomlkit

    table = tomlkit.table()
    for key, value in values.items():
        table.add(key, value)
    return table


def _toml_block(table: Any) -> str:
    """``[mcp_servers.leasehold]`` and its keys, as install appends them."""
    import tomlkit

    servers = tomlkit.table(is_super_table=True)
    servers.add(NAME, table)
    doc = tomlkit.document()
    doc.add("mcp_servers", servers)
    return tomlkit.dumps(doc)


def _toml_uninstall(path: str) -> bool:
    import tomlkit

    doc, text = _toml_doc(path)
    if text is None or _toml_current(doc) is None:
        return False
    servers = doc["mcp_servers"]
    block = _nl(text, _toml_block(_toml_table(_toml_current(doc))))
    if text.endswith(block) and not isinstance(servers, tomlkit.items.InlineTable):
        # The table install appended: cut those bytes (and the blank line before them) out.
        out = text[:len(text) - len(block)]
        for blank in ("\r\n\r\n", "\n\n"):
            if out.endswith(blank):
                out = out[:-len(blank) // 2]
                break
    else:
        del servers[NAME]
        if not servers:
            del doc["mcp_servers"]
        out = tomlkit.dumps(doc)
    if not out.strip():
        os.remove(path)
        return True
    write_bytes(path, out.encode("utf-8"))
    return True


# -- the commands ----------------------------------------------------------------------------------
def install(client: str, scope: str = "project", cwd: str | None = None, exe: str | None = None) -> dict[str, Any]:
    """Write leasehold's entry into ``client``'s configuration in ``scope``. Returns
    ``{"client", "scope", "path", "changed", "entry", "message"}``. Raises
    :class:`InvalidInput` (an unknown client or scope, a file that does not parse, a read-only
    file) or :class:`~leasehold.errors.ConfigError` (no leasehold executable)."""
    path = config_path(client, scope, cwd)
    wanted = entry(client, exe or executable())
    changed = _toml_install(path, wanted) if client == "codex" else _json_install(path, client, wanted)
    message = (f"installed the leasehold MCP server for {client} in {path}" if changed
               else f"the leasehold MCP server is already installed for {client} in {path}")
    if client == "codex" and scope == "project":
        message += " (Codex reads it in a trusted project)"
    return {"client": client, "scope": scope, "path": path, "changed": changed, "entry": wanted,
            "message": message}


def uninstall(client: str, scope: str = "project", cwd: str | None = None) -> dict[str, Any]:
    """Remove leasehold's entry from ``client``'s configuration in ``scope``. Returns
    ``{"client", "scope", "path", "changed", "message"}``."""
    path = config_path(client, scope, cwd)
    changed = _toml_uninstall(path) if client == "codex" else _json_uninstall(path, client)
    message = (f"removed the leasehold MCP server for {client} from {path}" if changed
               else f"no leasehold MCP server for {client} in {path}; nothing to remove")
    return {"client": client, "scope": scope, "path": path, "changed": changed, "message": message}


def show(clients: list[str] | tuple[str, ...] = CLIENTS, cwd: str | None = None) -> list[dict[str, Any]]:
    """For each client and scope: ``{"client", "scope", "path", "exists", "installed",
    "entry", "error", "problems"}`` (``problems``: why an installed entry cannot start)."""
    out = []
    for client in clients:
        for scope in SCOPES:
            path = config_path(client, scope, cwd)
            row: dict[str, Any] = {"client": client, "scope": scope, "path": path,
                                   "exists": os.path.exists(path), "installed": False, "entry": None,
                                   "error": None}
            current = None
            try:
                if not row["exists"]:
                    pass
                elif client == "codex":
                    current = _toml_current(_toml_doc(path)[0])
                else:
                    current = _json_state(path, client)[1]
            except LeaseholdError as exc:  # InvalidInput; ConfigError without tomlkit
                row["error"] = str(exc)
            row["problems"] = []
            if current is not None:
                row["installed"] = True
                row["entry"] = current
                command = current.get("command") if isinstance(current, dict) else None
                if is_remote(current):
                    pass  # a Streamable HTTP entry (the README's): nothing to start here
                elif not isinstance(command, str) or not (os.path.isabs(command) and os.access(command, os.X_OK)):
                    row["problems"].append(f"the entry runs {command!r}, not an executable at an absolute "
                                           f"path: run 'leasehold mcp install --client {client} --scope {scope}'")
            out.append(row)
    return out
