"""Edit a settings file as text, so every byte leasehold does not change stays as it was.

The hook installer adds and removes a few entries in files people and other tools also edit
(Claude Code's ``settings.json``, Codex's ``hooks.json``, Gemini CLI's ``settings.json``).
Rewriting the whole file from its parsed value would keep it JSON-equal but not byte-for-byte
(indentation, spacing, key layout, ``\\u`` escapes) and would drop comments, which Gemini CLI
accepts in its settings (it reads them through ``strip-json-comments``). Instead the file is
parsed with its token positions by ``json-five`` (a JSON5 parser that keeps comments and source
positions), and each change is a splice of the original text: a value replaced, an item or
member inserted after the last one (indented like its siblings), an item or member cut out with
its separating comma.

Functions raise :class:`ValueError` for text that does not parse.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def parse(text: str) -> Any:
    """The json-five model of ``text`` (comments, trailing commas and the rest of JSON5
    accepted). Raises :class:`ValueError`."""
    from json5.loader import ModelLoader, loads

    try:
        return loads(text, loader=ModelLoader())
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except Exception as exc:  # json-five raises its own JSON5DecodeError (a ValueError) and more
        raise ValueError(" ".join(str(exc).split())[:300] or type(exc).__name__) from None


def value(text: str) -> Any:
    """The Python value of JSON-with-comments ``text``. Raises :class:`ValueError`."""
    import json5

    try:
        return json5.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except Exception as exc:
        raise ValueError(" ".join(str(exc).split())[:300] or type(exc).__name__) from None


def key_of(pair: Any) -> str | None:
    key = pair.key
    return getattr(key, "characters", None) if key is not None else None


def member(obj: Any, key: str) -> Any:
    """The key-value pair ``key`` of the model object ``obj`` (the last one: JSON's rule), or
    None."""
    found = None
    for pair in getattr(obj, "key_value_pairs", ()):
        if key_of(pair) == key:
            found = pair
    return found


def has_comments(container: Any, text: str) -> bool:
    """True when ``container``'s source holds anything but its children, commas, brackets and
    whitespace (i.e. comments)."""
    at, rest = start(container), []
    for kid in children(container):
        rest.append(text[at:start(kid)])
        at = end(kid)
    rest.append(text[at:end(container)])
    return any(ch not in " \t\r\n,[]{}" for part in rest for ch in part)


def start(node: Any) -> int:
    if hasattr(node, "key") and hasattr(node, "value") and not hasattr(node, "_tok"):
        return start(node.key)  # a key-value pair
    return int(node._tok.index)


def end(node: Any) -> int:
    if hasattr(node, "key") and hasattr(node, "value") and not hasattr(node, "_tok"):
        return end(node.value)
    tok = getattr(node, "_end_tok", None) or node._tok
    return int(tok.end)


def children(container: Any) -> list[Any]:
    if hasattr(container, "key_value_pairs"):
        return list(container.key_value_pairs)
    return list(container.values)


class Editor:
    """Splices on ``text``; :meth:`result` applies them (non-overlapping) from the end."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.splices: list[tuple[int, int, str]] = []
        self.unit = self._indent_unit()
        #: the file's line ending: new lines end like its own (CRLF in a CRLF file)
        self.nl = "\r\n" if "\r\n" in text else "\n"

    def _indent_unit(self) -> str:
        """The file's indentation step: the leading whitespace of its first indented line
        (two spaces when it has none)."""
        for line in self.text.splitlines():
            stripped = line.lstrip(" \t")
            if stripped and stripped != line and stripped[0] in "\"'}]{[":
                return line[:len(line) - len(stripped)]
        return "  "

    def _line_indent(self, pos: int) -> str:
        begin = self.text.rfind("\n", 0, pos) + 1
        line = self.text[begin:pos]
        return line[:len(line) - len(line.lstrip(" \t"))]

    def _render(self, item: Any, indent: str, key: str | None = None) -> str:
        body = json.dumps(item, indent=self.unit or None, ensure_ascii=False)
        body = body.replace("\n", self.nl + indent)
        return body if key is None else f"{json.dumps(key, ensure_ascii=False)}: {body}"

    def replace(self, node: Any, new: Any) -> None:
        """Replace the value ``node`` with ``new`` (rendered as JSON)."""
        self.splices.append((start(node), end(node), self._render(new, self._line_indent(start(node)))))

    def append(self, container: Any, items: list[Any], keys: list[str] | None = None) -> None:
        """Add ``items`` (members ``keys[i]: items[i]`` for an object) after the container's
        last child, one per line indented like the children (or on the same line when the
        container is written on one line)."""
        kids = children(container)
        open_at, close_at = start(container), end(container) - 1
        outer = self._line_indent(open_at)
        # on one line: a list written on one line with items in it, or any list of a file
        # written on one line (an empty `[]` in a multi-line file gets lines of its own)
        one_line = "\n" not in self.text[open_at:close_at] and (bool(kids) or "\n" not in self.text.strip())
        if one_line:
            rendered = [json.dumps(i, ensure_ascii=False) if keys is None else
                        f"{json.dumps(keys[n], ensure_ascii=False)}: {json.dumps(i, ensure_ascii=False)}"
                        for n, i in enumerate(items)]
            if kids:
                self.splices.append((end(kids[-1]), end(kids[-1]), ", " + ", ".join(rendered)))
            else:
                self.splices.append((open_at + 1, open_at + 1, ", ".join(rendered)))
            return
        inner = self._line_indent(start(kids[0])) if kids else outer + self.unit
        rendered = [self._render(i, inner, None if keys is None else keys[n])
                    for n, i in enumerate(items)]
        nl = self.nl
        joined = ("," + nl + inner).join(rendered)
        if kids:
            at = end(kids[-1])
            trailing = getattr(container, "trailing_comma", None)
            if trailing is not None:  # JSON5's trailing comma: ours goes after it, with its own
                at = end(trailing)  # (its token: a comment between may hold a comma too)
                self.splices.append((at, at, nl + inner + joined + ","))
            else:
                self.splices.append((at, at, "," + nl + inner + joined))
        else:
            at = open_at + 1
            tail = self.text[at:close_at]
            closing = "" if tail.rstrip(" \t").endswith("\n") else nl + outer
            self.splices.append((at, at, nl + inner + joined + closing))

    def remove(self, container: Any, doomed: list[Any]) -> None:
        """Cut the children ``doomed`` out of ``container`` with their separating commas.
        When all go, the container is left empty with whatever else it held (comments): the
        cut runs from its opening bracket when only whitespace lies between that and the first
        child (what :meth:`append` inserts into an empty container), else from the first
        child, through the last child (and a trailing comma)."""
        kids = children(container)
        doomed_at = {start(d) for d in doomed}  # pairs are made afresh on each access: by position
        gone = [start(k) in doomed_at for k in kids]
        if kids and all(gone):
            begin = start(container) + 1
            if self.text[begin:start(kids[0])].strip():
                begin = start(kids[0])
            trailing = getattr(container, "trailing_comma", None)
            self.splices.append((begin, end(trailing) if trailing is not None else end(kids[-1]), ""))
            return
        i = 0
        while i < len(kids):
            if not gone[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(kids) and gone[j + 1]:
                j += 1
            trailing = getattr(container, "trailing_comma", None)
            if i > 0 and j == len(kids) - 1 and trailing is not None:
                # the last ones before a trailing comma: from after the comma that follows the
                # kept child (what :meth:`append` inserts after), through the trailing comma
                self.splices.append((self._comma_after(end(kids[i - 1])), end(trailing), ""))
            elif i > 0:  # from the end of the kept child before, through the last removed one
                self.splices.append((end(kids[i - 1]), end(kids[j]), ""))
            else:  # the first ones: up to the first kept child
                self.splices.append((start(kids[i]), start(kids[j + 1]), ""))
            i = j + 1

    def _comma_after(self, pos: int) -> int:
        """The position just after the comma that follows ``pos`` past whitespace and
        comments."""
        text = self.text
        while pos < len(text):
            if text.startswith("//", pos):
                pos = text.find("\n", pos)
                pos = len(text) if pos < 0 else pos
            elif text.startswith("/*", pos):
                pos = text.index("*/", pos) + 2
            elif text[pos] == ",":
                return pos + 1
            elif text[pos].isspace():
                pos += 1
            else:
                break
        raise ValueError("no comma where one was expected")

    def result(self) -> str:
        text = self.text
        for begin, stop, new in sorted(self.splices, key=lambda s: (s[0], s[1]), reverse=True):
            text = text[:begin] + new + text[stop:]
        return text
