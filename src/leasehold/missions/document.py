"""One mission file: Markdown with YAML frontmatter and an ``## Execution Log`` section.

The format is the mission coordination protocol's (``missions/queue|active|done/*.md``)::

    ---
    mission_id: 2025-12-22-thaifa-migration-critical
    status: ACTIVE
    assigned_to: Claude Code
    created: 2025-12-22
    claimed_at: 2025-12-22T02:30:00+01:00
    claimed_by: "Thaifa P0 migration session"
    ---

    # Thaifa migration

    ## Execution Log

    ### 2025-12-22

    - 02:30 - **CLAIMED** by session "Thaifa P0 migration session"

Edits are targeted: PyYAML parses the frontmatter (to validate it and to locate each top-level
key's exact span through the node marks), and :func:`set_fields` rewrites only the spans of
the keys it changes. Every other byte — other keys, their order, comments, quoting, line
endings and the Markdown body — stays as it was.
"""

from __future__ import annotations

import json
import re

from leasehold.errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The heading under which log lines are appended.
LOG_HEADING = "## Execution Log"
_LOG_HEADING_RE = re.compile(r"^##[ \t]+Execution Log[ \t]*#*[ \t]*$", re.IGNORECASE)
_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_DATE_HEADING_RE = re.compile(r"^###[ \t]+(\d{4}-\d{2}-\d{2})\b")


class InvalidMission(InvalidInput):
    """A mission file whose frontmatter is missing or not valid YAML.

    Attributes: ``path`` (the file), ``line`` (1-based line in the file, or None) and
    ``problem`` (what is wrong). ``str()`` is one line: ``PATH:LINE: invalid frontmatter: ...``.
    """

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: invalid frontmatter: {problem}")


#: Frontmatter larger than this (characters) is refused unparsed.
MAX_FRONTMATTER = 64 * 1024
#: The most YAML nodes the frontmatter may stand for once aliases are expanded (an alias bomb:
#: a few hundred bytes of ``&a``/``*a`` that expand to billions of values) and the deepest nesting.
MAX_EXPANDED_NODES = 10_000
MAX_DEPTH = 50


def _check_expansion(root: Any, path: str) -> None:
    """Refuse a composed YAML node graph whose alias-expanded size passes
    :data:`MAX_EXPANDED_NODES`, that nests deeper than :data:`MAX_DEPTH`, or that refers to
    itself, before anything is constructed from it. Linear in the graph (sizes memoised per
    node). Raises :class:`InvalidMission`."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: Any, depth: int) -> int:
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if depth > MAX_DEPTH:
            raise InvalidMission(path, node.start_mark.line + 2,
                                 f"the frontmatter nests deeper than {MAX_DEPTH} levels")
        if key in visiting:
            raise InvalidMission(path, node.start_mark.line + 2, "the frontmatter refers to itself (a recursive alias)")
        value = node.value
        total = 1
        if isinstance(value, list):
            visiting.add(key)
            for child in value:
                for part in (child if isinstance(child, tuple) else (child,)):
                    total += size(part, depth + 1)
                    if total > MAX_EXPANDED_NODES:
                        raise InvalidMission(path, node.start_mark.line + 2, (
                            f"the frontmatter expands to more than {MAX_EXPANDED_NODES} values "
                            "(YAML aliases); write the values out"))
            visiting.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _loader_class() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


class Document:
    """A parsed mission file's text.

    ``text`` is the whole file (str, newlines as written); ``data`` the frontmatter as a dict
    (PyYAML safe types: ``created: 2025-12-22`` is a ``datetime.date``); ``newline`` the file's
    line ending. Raises :class:`InvalidMission` from :meth:`parse`.
    """

    __slots__ = ("path", "text", "newline", "yaml_start", "yaml_end", "first_line", "data", "spans")

    def __init__(self, path: str, text: str, newline: str, yaml_start: int, yaml_end: int,
                 first_line: int, data: dict[str, Any], spans: dict[str, tuple[int, int]]) -> None:
        self.path = path
        self.text = text
        self.newline = newline
        self.yaml_start = yaml_start  # index of the first character of the YAML text
        self.yaml_end = yaml_end  # index of the closing '---' line
        self.first_line = first_line  # 1-based file line of the first YAML line
        self.data = data
        self.spans = spans  # key -> (start, end) of "key: value" in text

    @classmethod
    def parse(cls, text: str, path: str = "<mission>") -> Document:
        """Parse ``text``. Raises :class:`InvalidMission` (one line naming ``path`` and the line)."""
        import yaml

        if text.startswith("\ufeff"):
            raise InvalidMission(path, 1, "the file starts with a byte order mark; save it as UTF-8 without BOM")
        first_nl = text.find("\n")
        first = text[:first_nl if first_nl >= 0 else len(text)]
        if first.rstrip("\r").rstrip() != "---":
            raise InvalidMission(path, 1, "no frontmatter: the file must start with a '---' line")
        newline = "\r\n" if first.endswith("\r") else "\n"
        yaml_start = first_nl + 1
        # the closing delimiter: the next line that is exactly '---' (or '...')
        pos = yaml_start
        yaml_end = -1
        line_no = 2
        while pos <= len(text):
            nl = text.find("\n", pos)
            line = text[pos:nl if nl >= 0 else len(text)].rstrip("\r")
            if line.rstrip() in ("---", "..."):
                yaml_end = pos
                break
            if nl < 0:
                break
            pos = nl + 1
            line_no += 1
        if yaml_end < 0:
            raise InvalidMission(path, line_no, "the frontmatter is not closed by a '---' line")
        source = text[yaml_start:yaml_end]
        if len(source) > MAX_FRONTMATTER:
            raise InvalidMission(path, 2, f"the frontmatter is {len(source)} characters long; the "
                                          f"limit is {MAX_FRONTMATTER}")
        loader = _loader_class()(source)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_expansion(node, path)
            data = loader.construct_document(node) if node is not None else None
        except RecursionError:
            raise InvalidMission(path, None, "the frontmatter is nested too deeply") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            err_line: int | None = mark.line + 2 if mark is not None else None
            problem = exc.problem or "invalid YAML"
            if exc.context and exc.context_mark is not None:
                context_line = exc.context_mark.line + 2
                if mark is not None and mark.index >= len(source.rstrip()):
                    # the problem shows only at the closing '---': point at where it started
                    problem = f"{exc.context}: {problem} before the closing '---' (line {err_line})"
                    err_line = context_line
                else:
                    problem = f"{problem} ({exc.context} started at line {context_line})"
            raise InvalidMission(path, err_line, " ".join(problem.split())) from None
        except yaml.YAMLError as exc:
            raise InvalidMission(path, None, " ".join(str(exc).split())) from None
        finally:
            loader.dispose()
        if data is None:
            data, node = {}, None
        if not isinstance(data, dict) or (node is not None and not isinstance(node, yaml.MappingNode)):
            raise InvalidMission(path, 2, "the frontmatter must be a mapping of keys to values")
        spans: dict[str, tuple[int, int]] = {}
        for key_node, value_node in (node.value if node is not None else []):
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                continue
            if key in spans:
                raise InvalidMission(path, key_node.start_mark.line + 2, f"duplicate key {key!r}")
            start = yaml_start + key_node.start_mark.index
            end = yaml_start + value_node.end_mark.index
            if isinstance(value_node, yaml.ScalarNode) and value_node.start_mark.index == value_node.end_mark.index:
                end = yaml_start + max(value_node.end_mark.index, key_node.end_mark.index)
            while end > start and text[end - 1] in " \t\r\n":
                end -= 1
            spans[key] = (start, end)
        return cls(path, text, newline, yaml_start, yaml_end, 2, data, spans)

    # -- reading ---------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        return default if value is None else value

    @property
    def body(self) -> str:
        """Everything after the closing ``---`` line."""
        nl = self.text.find("\n", self.yaml_end)
        return "" if nl < 0 else self.text[nl + 1:]

    @property
    def title(self) -> str | None:
        """The first level-1 heading of the body, or None."""
        for line in self.body.splitlines():
            match = _HEADING_RE.match(line)
            if match and len(match.group(1)) == 1:
                return match.group(2)
        return None

    # -- editing ---------------------------------------------------------------------------
    def set_fields(self, fields: dict[str, Any]) -> Document:
        """A new document with top-level ``fields`` set (None writes an empty value).

        An existing key is rewritten in place (its comment and the lines around it stay);
        a missing key is added at the end of the frontmatter. The result is parsed again and
        checked, so a value that would not round-trip raises :class:`InvalidInput` instead of
        being written.
        """
        edits = []
        added = []
        for key, value in fields.items():
            line = f"{key}:" if value is None else f"{key}: {render_scalar(value, key in QUOTED_KEYS)}"
            if key in self.spans:
                edits.append((*self.spans[key], line))
            else:
                added.append(line)
        text = self.text
        for start, end, line in sorted(edits, reverse=True):
            text = text[:start] + line + text[end:]
        if added:
            shift = sum(len(line) - (end - start) for start, end, line in edits)
            at = self.yaml_end + shift
            if at > 0 and text[at - 1] != "\n":  # frontmatter's last line has no newline (can't happen), be safe
                added[0] = self.newline + added[0]
            text = text[:at] + "".join(line + self.newline for line in added) + text[at:]
        try:
            new = Document.parse(text, self.path)
        except InvalidMission as exc:
            raise InvalidInput(f"{self.path}: cannot set {', '.join(fields)} in place: the edited "
                               f"frontmatter would not parse ({exc.problem}); the file was not "
                               "changed") from None
        for key, value in fields.items():
            if not _same(new.data.get(key), value):
                raise InvalidInput(f"{self.path}: cannot write {key} = {value!r} faithfully")
        return new

    def append_log(self, day: str, line: str) -> Document:
        """A new document with ``- line`` appended under ``## Execution Log`` in the ``### day``
        sub-section (``day`` is ``YYYY-MM-DD``; the heading is added when the log's last one is
        another day). The section is created at the end of the file if missing."""
        nl = self.newline
        entry = "- " + " ".join(line.split())
        text = self.text
        lines = text.splitlines(keepends=True)
        offsets = []
        pos = 0
        for raw in lines:
            offsets.append(pos)
            pos += len(raw)
        body_from = self.yaml_end
        log_index = None
        for i, raw in enumerate(lines):
            if offsets[i] > body_from and _LOG_HEADING_RE.match(raw.rstrip("\r\n")):
                log_index = i
        if log_index is None:
            tail = text if text.endswith("\n") or not text else text + nl
            sep = "" if tail.endswith(nl + nl) or not tail else nl
            return Document.parse(f"{tail}{sep}{LOG_HEADING}{nl}{nl}### {day}{nl}{nl}{entry}{nl}", self.path)
        end = len(lines)
        for i in range(log_index + 1, len(lines)):
            match = _HEADING_RE.match(lines[i].rstrip("\r\n"))
            if match and len(match.group(1)) <= 2:
                end = i
                break
        last = log_index
        last_day = None
        for i in range(log_index + 1, end):
            stripped = lines[i].strip()
            if stripped:
                last = i
            match = _DATE_HEADING_RE.match(lines[i])
            if match:
                last_day = match.group(1)
        insert_at = offsets[last] + len(lines[last].rstrip("\r\n"))
        last_is_heading = last == log_index or bool(_DATE_HEADING_RE.match(lines[last]))
        if last_day != day:
            addition = f"{nl}{nl}### {day}{nl}{nl}{entry}"
        elif last_is_heading:
            addition = f"{nl}{nl}{entry}"
        else:
            addition = f"{nl}{entry}"
        rest = text[insert_at:]
        if not rest:
            rest = nl
        return Document.parse(text[:insert_at] + addition + rest, self.path)

    def log_lines(self) -> list[str]:
        """The ``- ...`` entries of the execution log, in order (without the ``- ``)."""
        found = []
        inside = False
        for line in self.body.splitlines():
            if _LOG_HEADING_RE.match(line):
                inside = True
                continue
            match = _HEADING_RE.match(line)
            if match and len(match.group(1)) <= 2:
                inside = False
            elif inside and line.startswith("- "):
                found.append(line[2:])
        return found


#: Keys whose string values are always written double-quoted (as the protocol shows them).
QUOTED_KEYS = frozenset({"claimed_by", "assigned_to", "title"})
_PLAIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/+-]*")


def render_scalar(value: Any, quote: bool = False) -> str:
    """A YAML scalar for one frontmatter line: numbers, simple words and ISO timestamps plain
    (when YAML reads them back as the same string), anything else double-quoted (JSON escaping
    is valid YAML). ``quote`` always quotes strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if quote:
        return json.dumps(text, ensure_ascii=False)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z))?", text):
        return text  # YAML reads it back as a date/timestamp: checked by set_fields
    if _PLAIN_RE.fullmatch(text) and not text.endswith(" "):
        import yaml

        try:
            if yaml.load(f"k: {text}", Loader=_loader_class()) == {"k": text}:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def _same(parsed: Any, wanted: Any) -> bool:
    if wanted is None:
        return parsed is None
    if hasattr(parsed, "isoformat"):
        parsed = parsed.isoformat()
        wanted = str(wanted)
        return parsed == wanted or parsed.replace("+00:00", "Z") == wanted
    return parsed == wanted or str(parsed) == str(wanted)
