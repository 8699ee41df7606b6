"""Which task ids a free-text prompt refers to: the dispatch gate's matching rule.

A prompt refers to a task when it writes the id the way a person or an agent writes a reference,
not when one of its words merely equals a short id ("Fix the lint warning on line 42" does not
refer to task ``42``; "Read the sync module" does not refer to task ``sync``).

The text is first normalised: Unicode NFKC (full-width ``＃９９９２７`` becomes ``#99927``),
invisible characters removed (format characters such as zero-width spaces and joiners, soft
hyphens, bidirectional controls, variation selectors), and Unicode dashes and minus signs made
``-``, and Cyrillic and Greek letters that look like Latin ones made those Latin letters
(:data:`CONFUSABLES`: ``СМВ-0036`` typed with Cyrillic letters is ``CMB-0036``). A *token* is then a maximal run of task-id characters (ASCII letters, digits and
``._:/#-``), without the sentence punctuation that ends it (``99927:`` -> ``99927``).

- A **compound** token (it has a separator between letters or digits, or mixes letters and
  digits in 4 or more characters) is a reference as it stands: ``CMB-0036``, ``iv-sz3sf``, a
  mission id ``2025-12-21-billing-export`` (also as a path part ``missions/active/<id>.md``).
- A **plain** token (only digits, only letters, or a short mix like ``v2``) is a reference when
  it is marked: ``#99927``, ``MC#42``; after a reference word (``task 42``, ``MC #99927``,
  ``ticket no. 42``, ``tasks 41, 42 and 43``, ``mission `sync```; the words are
  :data:`KEYWORDS` plus ``reference_keywords`` in leasehold.toml); or, for a number of 5 or more
  digits, standing alone (``Work on 99927``) unless it reads as a quantity (``timeout 30000 ms``,
  ``port 50051``, ``=30000``).
- Never a reference: a ``#N`` of another tracker (``owner/repo#42``, ``PR #42``, ``GitHub issue
  #42``), or a number after a word that makes it a line, port, page, version and the like
  (:data:`NOT_AFTER`).
- A digit run broken by one line break (``9992<newline>7``) also yields the joined number, under
  the same rules.
- ``reference_patterns`` in leasehold.toml adds regular expressions (Python ``re`` syntax) run
  over the normalised text; the group named ``id``, else the whole match, is a reference. ``re``
  is imported only when patterns are configured.

:func:`references` returns the candidate ids; the gate asks the ledger which of them are held by
another session, so a candidate that is not a held task costs nothing. The corpus in
``tests/test_refs_corpus.py`` fixes the behaviour on realistic prompts.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_ALNUM = _LETTERS | _DIGITS
_SEPARATORS = frozenset("._:/#-")
ID_CHARS = _ALNUM | _SEPARATORS
#: Ending punctuation that belongs to the sentence, not to the id.
_TRIM = "._:/-"

#: Words after which a plain token is a reference (lower case; a trailing ``.`` or ``:`` of the
#: word is ignored).
KEYWORDS = frozenset({
    "task", "tasks", "ticket", "tickets", "issue", "issues", "mission", "missions", "lease",
    "leases", "mc", "bug", "bugs", "claim", "claimed", "story", "epic",
})
#: Words that may stand between a reference word and the id (``task id 42``, ``ticket no. 7``).
FILLERS = frozenset({"id", "ids", "no", "nr", "num", "number", "numbers", "#"})
#: Words that join a list of references (``tasks 41, 42 and 43``).
JOINERS = frozenset({"and", "or", "plus"})
#: Words after which ``#N`` is not a task reference: a line, a pull request, another tracker's
#: numbering (``PR #42``, ``line #42``).
NOT_BEFORE_HASH = frozenset({
    "line", "lines", "l", "ln", "page", "pages", "p", "pp", "step", "row", "col", "column",
    "pr", "prs", "mr", "pull", "commit", "build", "pipeline", "run", "job", "chapter",
    "section", "figure", "fig", "table", "rfc", "pep", "cve", "port", "pid", "comment",
    "discussion", "thread",
})
#: Words after which a lone number of 5+ digits is a value, not a task reference.
NOT_AFTER = NOT_BEFORE_HASH | frozenset({
    "lines", "ports", "pid", "steps", "rows", "columns", "version", "v", "attempt", "offset",
    "size", "limit", "timeout", "uid", "gid", "code", "errno", "status", "http", "exit", "top",
    "first", "last", "every", "over", "under", "about", "around", "approximately", "than",
    "least", "most", "max", "min", "x", "batch", "seed", "epoch", "round", "year", "zip",
    "phone", "budget", "price", "cost", "salary", "revenue", "balance", "amount", "total",
    "sum", "count", "length", "width", "height", "depth", "interval", "ttl", "delay",
    "threshold", "capacity", "quota", "ratio", "rate", "ms", "us", "ns", "sha", "hash",
    "number", "fax", "through",
})
#: Names of other trackers: ``GitHub issue #42`` is not task 42.
OTHER_TRACKERS = frozenset({"github", "gitlab", "gh", "jira", "linear", "upstream", "bitbucket",
                            "gitea", "sentry", "pagerduty", "zendesk"})
#: Words after a number that make it a quantity (``30000 ms``, ``12000 rows``).
UNITS = frozenset({
    "ms", "s", "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "h", "hr",
    "hrs", "hour", "hours", "day", "days", "b", "kb", "mb", "gb", "tb", "kib", "mib", "gib",
    "byte", "bytes", "bit", "bits", "px", "pt", "em", "rem", "items", "rows", "lines", "records",
    "entries", "requests", "req", "rps", "qps", "users", "tests", "times", "files", "tokens",
    "chars", "characters", "words", "iterations", "steps", "retries", "attempts", "events",
    "messages", "errors", "calls", "ops", "loc", "points", "commits", "issues", "tasks",
    "members", "customers", "accounts", "nodes", "pods", "workers", "threads", "connections",
    "results", "usd", "eur", "dollars", "euros", "cents", "k", "m", "x", "rpm", "hz", "khz", "mhz", "ghz",
})
#: Characters right before a number that make it a value, not a reference.
_VALUE_BEFORE = frozenset("=$€£¥+*<>~^%@")
#: Typographic quotes NFKC leaves in place (``task “42”``, ``task «42»``).
_QUOTES = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a"
#: Characters allowed between a reference word and its id (spaces, quotes, brackets, emphasis).
_GAP_OK = frozenset(" \t`'\"([*_:#" + _QUOTES)
#: After a filler word, its abbreviation point may stand in the gap as well (``no. 7``).
_FILLER_GAP_OK = _GAP_OK | {"."}
#: Characters allowed between items of a list of references.
_LIST_GAP_OK = frozenset(" \t,&`'\"()[]*_" + _QUOTES)
#: Invisible characters NFKC leaves in place (category Cf is removed as well).
_INVISIBLE = frozenset("\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u3164\uffa0")
_DASHES = {0x2010: "-", 0x2011: "-", 0x2012: "-", 0x2013: "-", 0x2014: "-", 0x2015: "-",
           0x2212: "-", 0xfe58: "-", 0xfe63: "-", 0xff0d: "-"}


#: Cyrillic and Greek letters that render like a Latin letter (the Latin-target entries of
#: Unicode's confusables data, UTS #39, for these two scripts), mapped to that letter: task ids
#: are ASCII, so ``СМВ-0036`` with Cyrillic С, М, В is ``CMB-0036`` to the gate, as to a reader.
#: One character for one, so token offsets stay valid.
CONFUSABLES = {
    # Cyrillic capitals
    0x0405: "S", 0x0406: "I", 0x0408: "J", 0x0410: "A", 0x0412: "B", 0x0415: "E", 0x041A: "K",
    0x041C: "M", 0x041D: "H", 0x041E: "O", 0x0420: "P", 0x0421: "C", 0x0422: "T", 0x0423: "Y",
    0x0425: "X", 0x04AE: "Y", 0x04C0: "I", 0x051A: "Q", 0x051C: "W", 0x0417: "3",
    # Cyrillic small letters
    0x0430: "a", 0x0435: "e", 0x043E: "o", 0x0440: "p", 0x0441: "c", 0x0443: "y", 0x0445: "x",
    0x0455: "s", 0x0456: "i", 0x0458: "j", 0x04BB: "h", 0x04CF: "l", 0x0501: "d", 0x051B: "q",
    0x051D: "w", 0x0461: "w", 0x0475: "v",
    # Greek capitals
    0x0391: "A", 0x0392: "B", 0x0395: "E", 0x0396: "Z", 0x0397: "H", 0x0399: "I", 0x039A: "K",
    0x039C: "M", 0x039D: "N", 0x039F: "O", 0x03A1: "P", 0x03A4: "T", 0x03A5: "Y", 0x03A7: "X",
    0x03F9: "C", 0x037F: "J",
    # Greek small letters
    0x03B1: "a", 0x03B3: "y", 0x03B9: "i", 0x03BD: "v", 0x03BF: "o", 0x03C1: "p", 0x03C5: "u",
    0x03F2: "c", 0x03F3: "j",
}


def normalize(text: str) -> str:
    """``text`` in NFKC with invisible characters removed, dashes made ``-`` and Latin
    look-alike letters made Latin (see the module docstring). Lone surrogates are kept (they are not id characters)."""
    import unicodedata

    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch in _INVISIBLE or (ch > "\u00ff" and (unicodedata.category(ch) == "Cf"
                                                  or 0xfe00 <= ord(ch) <= 0xfe0f
                                                  or 0xe0100 <= ord(ch) <= 0xe01ef)):
            continue
        out.append(ch)
    return "".join(out).translate(_DASHES).translate(CONFUSABLES)


class _NonIdToSpace(dict):  # type: ignore[type-arg]
    """``str.translate`` table: every character that is not an id character becomes a space
    (one for one, so offsets stay valid)."""

    def __missing__(self, code: int) -> int:
        value = code if chr(code) in ID_CHARS else 32
        self[code] = value
        return value


_TO_SPACE = _NonIdToSpace()


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """``(token, start, end)`` of each run of id characters, sentence punctuation trimmed."""
    out = []
    pos = 0
    for raw in text.translate(_TO_SPACE).split(" "):
        if raw:
            token = raw.rstrip(_TRIM)
            lead = len(token) - len(token.lstrip("._:/-"))
            token = token[lead:]
            if token:
                out.append((token, pos + lead, pos + lead + len(token)))
        pos += len(raw) + 1
    return out


def _plain(token: str) -> bool:
    """Only digits, only letters, or a mix shorter than 4 characters (``v2``, ``e2e``). Tokens
    hold ASCII id characters only, so ``isalnum``/``isalpha`` are the ASCII tests."""
    if not token.isalnum():
        return False
    return token.isdigit() or token.isalpha() or len(token) < 4


def _word(token: str) -> str:
    return token.lower().rstrip(".:")


class _Scan:
    def __init__(self, keywords: frozenset[str]) -> None:
        self.keywords = keywords
        self.found: dict[str, None] = {}

    def add(self, token: str) -> None:
        if token and len(token) <= 200:
            self.found[token] = None


def _hash_part(part: str, keywords: frozenset[str]) -> str | None:
    """``#42`` -> ``42``; ``MC#42`` / ``task#42`` / ``task:42`` -> ``42``; else None."""
    for sep in ("#", ":"):
        if sep in part:
            head, _, tail = part.rpartition(sep)
            tail = tail.rstrip(_TRIM)
            if not tail or not _plain(tail):
                return None
            if (head == "" and sep == "#") or head.lower() in keywords:
                return tail
            return None
    return None


def references(text: str, keywords: Iterable[str] = (), patterns: Iterable[str] = ()) -> list[str]:
    """The ids ``text`` refers to, in order of appearance, without duplicates (see the module
    docstring for the rule). ``keywords``: extra reference words; ``patterns``: extra regular
    expressions (a bad one raises ``re.error``)."""
    text = normalize(text)
    words = KEYWORDS.union(k.lower() for k in keywords) if keywords else KEYWORDS
    scan = _Scan(words)
    tokens = _tokens(text)
    # state 1: right after a reference word (the next id is marked); state 2: right after a
    # marked id (the next one is marked when a comma, '&' or a joining word separates them)
    state = 0
    filler = False
    for k, (token, start, _end) in enumerate(tokens):
        gap = text[tokens[k - 1][2]:start] if k else ""
        low = _word(token)
        if low in words:
            state = 1
            continue
        if state == 1 and low in FILLERS and _gap_ok(gap, _GAP_OK):
            filler = True
            continue
        if state == 2 and low in JOINERS and _gap_ok(gap, _LIST_GAP_OK):
            state = 1
            continue
        if state == 1:
            marked = _gap_ok(gap, _FILLER_GAP_OK if filler else _GAP_OK)
        elif state == 2:
            marked = _gap_ok(gap, _LIST_GAP_OK) and ("," in gap or "&" in gap)
        else:
            marked = False
        if marked and _other_tracker(tokens, k):
            marked = False
        state = 0
        filler = False
        if _plain(token):
            if marked:
                scan.add(token)
                state = 2
            elif token.isdigit() and len(token) >= 5 and not _quantity(text, tokens, k):
                scan.add(token)
            _joined(text, tokens, k, scan)
            continue
        # a compound token: whole, then its marked or path parts
        if token.startswith("#"):
            tail = token[1:].rstrip(_TRIM)
            if tail and _plain(tail):
                if not _other_tracker(tokens, k) and not (
                        k and _word(tokens[k - 1][0]) in NOT_BEFORE_HASH and _gap_ok(gap, _GAP_OK)):
                    scan.add(tail)
                    state = 2
                    _joined(text, tokens, k, scan, marked=True)
                continue
        if "://" in token:
            continue  # a URL: another system's address
        if "#" not in token or "/" not in token:
            scan.add(token)
            state = 2 if marked else 0
        hashed = _hash_part(token, words) if "/" not in token else None
        if hashed is not None:
            scan.add(hashed)
            state = 2
        elif "/" in token:
            _path_parts(token, scan)
    for pattern in patterns:
        _pattern(text, pattern, scan)
    return list(scan.found)


def _gap_ok(gap: str, allowed: frozenset[str]) -> bool:
    return len(gap) <= 6 and all(ch in allowed for ch in gap)


def _other_tracker(tokens: list[tuple[str, int, int]], k: int) -> bool:
    for back in (1, 2, 3):
        if k - back >= 0 and _word(tokens[k - back][0]) in OTHER_TRACKERS:
            return True
    return False


def _quantity(text: str, tokens: list[tuple[str, int, int]], k: int) -> bool:
    """A lone number that reads as a value: after ``=``/``$``..., after a :data:`NOT_AFTER`
    word, before a unit or ``%``."""
    _, start, end = tokens[k]
    if start and text[start - 1] in _VALUE_BEFORE and not _emphasis(text, start - 1):
        return True
    if end < len(text) and text[end] in "%":
        return True
    if k and _word(tokens[k - 1][0]) in NOT_AFTER:
        return True
    if k and _word(tokens[k - 1][0]) in OTHER_TRACKERS:
        return True
    if k + 1 < len(tokens):
        nxt, nstart, _ = tokens[k + 1]
        if _word(nxt) in UNITS and text[end:nstart].strip(" \t") == "":
            return True
    return False


def _emphasis(text: str, at: int) -> bool:
    """``text[at]`` is a Markdown emphasis mark (``**99927**``, ``*99927*``), not an operator:
    a ``*`` that does not follow a digit, a letter or ``)`` (``3*99927`` is a product)."""
    if text[at] != "*":
        return False
    while at and text[at - 1] == "*":
        at -= 1
    return not at or not (text[at - 1].isalnum() or text[at - 1] == ")")


def _joined(text: str, tokens: list[tuple[str, int, int]], k: int, scan: _Scan,
            marked: bool = False) -> None:
    """A number broken by one line break: ``9992\\n7`` (also the two characters ``\\n``)."""
    token, start, end = tokens[k]
    token = token.lstrip("#") if marked else token
    if not token.isdigit():
        return
    for brk in ("\r\n", "\n", "\\r\\n", "\\n"):
        if text.startswith(brk, end):
            break
    else:
        return
    i = j = end + len(brk)
    while j < len(text) and text[j] in _DIGITS:
        j += 1
    nxt = text[i:j]
    if not nxt or (j < len(text) and text[j] in _LETTERS):
        return
    joined = token + nxt
    if marked:
        pass
    elif start and text[start - 1] == "#":
        marked = True
    elif k and _word(tokens[k - 1][0]) in scan.keywords:
        marked = True
    if marked or (len(joined) >= 5 and not _quantity(text, tokens, k)):
        scan.add(joined)


def _path_parts(token: str, scan: _Scan) -> None:
    """Parts of a path or list: ``missions/active/<mission id>.md`` gives the mission id;
    ``#41/#42`` gives ``41`` and ``42``; ``owner/repo#42`` gives nothing."""
    for part in token.split("/"):
        if not part:
            continue
        if part.startswith("#"):
            tail = part[1:].rstrip(_TRIM)
            if tail and _plain(tail):
                scan.add(tail)
            continue
        if "#" in part:
            continue  # owner/repo#42: another tracker's issue
        stem = part[:-3] if part.endswith(".md") else part
        stem = stem.strip(_TRIM)
        if stem and not _plain(stem):
            scan.add(stem)


def _pattern(text: str, pattern: str, scan: _Scan) -> None:
    import re

    compiled = re.compile(pattern)
    for match in compiled.finditer(text):
        value = match.group("id") if "id" in compiled.groupindex else match.group(0)
        if value:
            scan.add(value.strip())
