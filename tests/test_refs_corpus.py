"""The dispatch gate's reference matching on a labelled corpus of sub-agent prompts.

How the corpus was made: each prompt was written by hand in the style of the ``Agent`` tool
prompts and descriptions agents send (instructions to a sub-agent mixing prose, code, file paths
with line numbers, commands, numbers with units, dates, versions, URLs, other trackers' issue
numbers and ids in the styles of the reference protocols: ``MC #99927``, ``task 99927``,
``CMB-0036``, ``iv-sz3sf``, mission ids). The held ids were chosen to collide with ordinary
words and numbers (``42``, ``7``, ``1234``, ``sync``, ``auth``, ``docs``, ``release``). Each
prompt is labelled with the held ids a reader would say it refers to; a prompt that only uses
such a word or number as a word or quantity is labelled with nothing. Rows ``STYLE_ROWS`` are
generated: every reference style below applied to a few sentence frames. Requirement: 0 false
denials (an id found that the label does not list) and 0 missed references.
"""

from __future__ import annotations

import pytest

from leasehold.hooks.refs import normalize, references

HELD = ("42", "7", "1234", "sync", "auth", "docs", "release", "99927", "99818", "CMB-0036",
        "iv-sz3sf", "bd-7f3a", "2025-12-21-billing-export", "ops-12")

N: frozenset[str] = frozenset()


def L(*ids: str) -> frozenset[str]:
    return frozenset(ids)


CORPUS: list[tuple[str, frozenset[str]]] = [
    ("Переведи раздел про синхронизацию на русский язык и не трогай код в строке 42.", N),
    ("Проверь, что тест test_sync проходит, и опиши результат по-русски.", N),
    ("Διόρθωσε το σφάλμα στη γραμμή 42 του αρχείου utils.py και γράψε μια σύνοψη.", N),
    ("Исправь задачу CMB-0036: расхождение в отчёте.", L("CMB-0036")),

    # -- the cases from the field: words and numbers that equal short ids -----------------------
    ("Fix the lint warning on line 42 of utils.py.", N),
    ("Read the sync module and summarize it.", N),
    ("Summarize what src/sync/worker.py does in 7 bullet points.", N),
    ("The auth middleware returns 401 for expired tokens; find out why refresh does not run.", N),
    ("Update the docs for the new CLI flags; keep the tone of the existing docs.", N),
    ("Prepare the release notes for 2.4.0 from the git log since the last release.", N),
    ("Run the test suite and report which of the 1234 tests fail.", N),
    ("There are 42 call sites of get_user(); list them with file and line.", N),
    ("Check utils.py:42 and utils.py:57 for the off-by-one.", N),
    ("The answer to everything is 42. Write a docstring joke about it.", N),
    ("Make sync() idempotent: calling it twice must not duplicate rows.", N),
    ("Look at the auth flow in app/auth/ and draw a sequence diagram.", N),
    ("Rename the docs/ folder to documentation/ and fix every link.", N),
    ("Cut a release branch release/2.4 from main and bump the version.", N),
    ("Set the retry count to 7 and the backoff to 0.5 s.", N),
    ("Port 1234 is taken on CI; move the test server to an ephemeral port.", N),
    ("See owner/repo#42 for the upstream discussion before changing anything.", N),
    ("This mirrors astral-sh/uv#1234; read it and tell me whether our case is the same.", N),
    ("PR #42 introduced the regression; bisect between it and HEAD.", N),
    ("GitHub issue #7 describes the same crash on Windows.", N),
    ("Line #42 in the stack trace is inside the sync loop.", N),
    ("Step 7: run the migrations. Step 8: restart the workers.", N),
    ("Use Python 3.12 and pytest 8; the sync tests need the asyncio plugin.", N),
    ("Investigate why the sync job took 99927 ms last night.", N),
    ("The table has 99927 rows; add an index on user_id.", N),
    ("Set timeout=99927 in the config and see if the flake disappears.", N),
    ("The invoice total was $99927 — check the rounding in billing/export.py.", N),
    ("Listen on port 50051 for the gRPC server; the auth interceptor goes first.", N),
    ("Pin requests to 2.31.0 and urllib3 below 2.", N),
    ("Upgrade the auth library from 1.42 to 1.43 and run the sync tests.", N),
    ("Read https://github.com/org/repo/issues/42 and summarize the thread.", N),
    ("Read https://example.com/docs/sync and compare with our sync design.", N),
    ("Check commit 99927ab for the breaking change.", N),
    ("Write a haiku about sync and auth.", N),
    ("The release job failed at 2026-05-07T12:30:00Z; fetch the logs.", N),
    ("Use 7-zip to unpack the artifact, then run docs/build.sh.", N),
    ("Add a 42px margin to the sidebar and a 7px border radius.", N),
    ("Our SLA is 99.927% uptime; compute the allowed downtime per month.", N),
    ("Compare v42 and v43 of the API schema.", N),
    ("Benchmarks: 1234 req/s before, 2345 req/s after. Explain the gain.", N),
    ("The test test_sync_7 is flaky; make it deterministic.", N),
    ("In auth.py, the constant MAX_TRIES = 7 should come from settings.", N),
    ("Translate the docs to German; start with docs/index.md.", N),
    ("Find all TODO comments mentioning release or sync.", N),
    ("The user with id 1234 cannot log in; check the auth logs for that user.", N),
    ("The chart shows 99818 requests over 24 hours; find the peak hour.", N),
    ("Refactor the 42-line function parse_config into smaller pieces.", N),
    ("Write tests for page 7 of the onboarding wizard.", N),
    ("Explain RFC 7231 section 6.5.1 as it applies to our 400 responses.", N),
    ("Do not touch anything under vendor/ or third_party/.", N),
    ("Rebase onto origin/main and resolve the conflicts in sync.py.", N),
    ("Create a 7-day rolling average of the auth failures metric.", N),
    ("Check that ./scripts/release.sh still works with bash 5.", N),
    ("The CSV export has 12000 rows per file; split at 5000.", N),
    ("Make the docs build pass: sphinx complains on docs/api.rst line 42.", N),
    ("Our error E1234 means the sync token expired; improve the message.", N),
    ("Reduce the Docker image below 99927 KB if you can.", N),
    ("The phone number 99927 in the fixture is fake; replace it with a clearly fake one.", N),
    ("Fix the flaky test in tests/test_auth.py::test_refresh[7].", N),
    ("Replace md5 with sha256 in the sync checksum.", N),
    ("Use the release-please action for the release workflow.", N),
    ("Check the year 2025 rows in the billing export for duplicates.", N),
    ("Draft an ADR on whether auth should move into its own service.", N),
    ("Sort the 1234 entries by date and keep the newest 42.", N),
    ("The worker uses 7 threads; profile it with py-spy for 42 seconds.", N),
    ("In the sync docs, replace every 'master' with 'main'.", N),
    ("Version 99927 of the schema does not exist; the latest is 57.", N),
    ("Jira issue #42 is about the mobile app, not us; ignore it.", N),
    ("Look for the string 'sync' in the logs between 12:00 and 12:42.", N),
    ("Try seed 99927 for the property test and report the shrunk example.", N),
    ("A batch of 99927 events arrived at once; make the consumer handle it.", N),
    ("The docs say the auth token lives 7 days; check the code agrees.", N),
    ("Our HTTP 42x codes are not standard; map them to 4xx.", N),
    ("Write the changelog entry for the release in the style of the previous ones.", N),
    ("The auth0 integration needs the new tenant URL.", N),
    ("Make the CLI accept --retries 7 and --timeout 42s.", N),
    ("Count how many sync calls happen per request; I expect about 7.", N),
    ("Add an ops-dashboard panel for the auth errors.", N),
    ("bd is the beads CLI; run bd list and paste the output.", N),
    ("The fixture user sync_bot has id 42 in tests/fixtures/users.json.", N),
    ("Explain what `git rebase --onto` does, with 7 short examples.", N),
    ("Turn the release checklist in docs/release.md into a script.", N),
    ("GitLab MR !42 is unrelated; our change is local.", N),
    ("Page through 99927 results 100 at a time using the cursor API.", N),
    ("Use the sync lock from locks.py so two workers never write together.", N),
    ("Write an auth test for tokens that expire in 7 seconds.", N),
    ("Change `LIMIT 42` in the query to a parameter.", N),
    ("Summarize the five largest files in the repo by lines of code.", N),
    ("Is 99927 prime? Add a tiny helper and a test for it.", L("99927")),
    # -- explicit references, in the styles people and agents write ---------------------------
    ("Work on task 99927: the retry loop in the sync worker never backs off.", L("99927")),
    ("Fix MC #99927 retry loop", L("99927")),
    ("MC #99818 is the genesis incident; read its notes before touching the gate.", L("99818")),
    ("Implement 99927: add exponential backoff to the sync worker.", L("99927")),
    ("99927 — the sync worker retries too fast. Fix it and add a test.", L("99927")),
    ("Continue task #42: the auth refresh race.", L("42")),
    ("Pick up #42 and finish the tests.", L("42")),
    ("Task 7 is the docs overhaul; write the outline for it.", L("7")),
    ("Task sync: make the worker idempotent.", L("sync")),
    ("Please take task `auth` and move the token refresh into a background job.", L("auth")),
    ("Work on ticket CMB-0036 (the namespace drift).", L("CMB-0036")),
    ("CMB-0036: fix the reservation drift check.", L("CMB-0036")),
    ("Close out iv-sz3sf by writing the migration.", L("iv-sz3sf")),
    ("iv-sz3sf and bd-7f3a are related; do both.", L("iv-sz3sf", "bd-7f3a")),
    ("Execute mission 2025-12-21-billing-export end to end.", L("2025-12-21-billing-export")),
    ("Read missions/active/2025-12-21-billing-export.md and carry out its next step.",
     L("2025-12-21-billing-export")),
    ("Tasks 41, 42 and 43 touch the same file; do 42 first.", L("42")),
    ("Tasks #7, #42 need a review.", L("7", "42")),
    ("Do task 1234 (the auth cleanup) and nothing else.", L("1234")),
    ("Blocked by #1234; start on the parts that do not need it.", L("1234")),
    ("Follow up on MC #99927 and MC #99818 together.", L("99927", "99818")),
    ("Re: task id 42 — the sync fix needs a test.", L("42")),
    ("Ticket no. 7 asks for dark mode in the docs site.", L("7")),
    ("Mission `release`: tag and publish.", L("release")),
    ("Task: docs. Rewrite the README quickstart.", L("docs")),
    ("The lease on task 99927 is ours; continue it.", L("99927")),
    ("MC#99927 again: the backoff still overflows.", L("99927")),
    ("See tasks #41/#42 for the background.", L("42")),
    ("Finish ops-12 (the alert routing).", L("ops-12")),
    ("For CMB-0036 check the feed; for 99927 check the worker.", L("CMB-0036", "99927")),
    ("Issue 42: the sync button does nothing on Safari.", L("42")),
    ("Bug #7: the auth page flickers.", L("7")),
    ("Fix bug 1234 in the release script.", L("1234")),
    ("(task 42) Write the missing tests for sync.py.", L("42")),
    ("**Task 42** — refactor the sync client.", L("42")),
    ("Subtask of 99927: measure the current retry delays.", L("99927")),
    ("Handle the edge case from 99818 in the new code.", L("99818")),
    ("Context: MC #99927. Goal: backoff. Constraints: no new dependencies.", L("99927")),
    ("Story 7 of the epic: show the docs link in the header.", L("7")),
    ("Ticket CMB-0036, ticket CMB-0037 and ticket CMB-0038 are one change.", L("CMB-0036")),
    ("task:42 — see the description in the ledger.", L("42")),
    ("After claim 99927 succeeds, run the migration.", L("99927")),
    ("Claimed task sync; now dispatch the writer.", L("sync")),
    ("Double-check 2025-12-21-billing-export's acceptance criteria.", L("2025-12-21-billing-export")),
    ("Mission 2025-12-21-billing-export, step 3: export the CSVs (1234 rows each).",
     L("2025-12-21-billing-export")),
    ("task 42's test plan is in the ledger; follow it.", L("42")),
    ("Review the PR for #99927 and leave comments.", L("99927")),
    ("Refs MC #99927 (backoff), PR #42 (unrelated).", L("99927")),
    ("Port the fix from iv-sz3sf to the 7 other workers.", L("iv-sz3sf")),
    ("In bd-7f3a the sync flag defaults to off; flip it.", L("bd-7f3a")),
    ("Tasks sync and auth are both mine; do sync.", L("sync", "auth")),
    ("tickets: CMB-0036", L("CMB-0036")),
    ("The fix for ops-12 is in src/alerts/routing.py line 42.", L("ops-12")),
    ("Task 99927 needs 42 more tests; write 7 of them now.", L("99927")),
    ("Write the release notes for task release (version 2.4.0).", L("release")),
    ("Verify ticket 1234 against docs/spec.md section 7.", L("1234")),
    ("Check whether MC #99818's fix regressed in the 2.3 release.", L("99818")),
    ("Split 99927 into two tasks: backoff and jitter.", L("99927")),
    ("[task 42] auth: handle clock skew", L("42")),
    ("Carry on with CMB-0036. Do not touch auth or sync.", L("CMB-0036")),
    ("Reopen 99818 only if the incident recurs.", L("99818")),
    ("Bisect between v2.3.0 and v2.4.0 for ticket #1234.", L("1234")),
    ("tasks 7 & 42: pair them.", L("7", "42")),
    ("Work on issues #7 and #42.", L("7", "42")),
    ("Handle task ID 1234; see notes at docs/tasks/1234.md.", L("1234")),
]

#: Sentence frames and reference styles: every style in every frame (generated rows).
FRAMES = (
    "Please pick up {ref} and write the tests first.",
    "{ref}: the sync worker drops messages after 42 retries; fix it.",
    "Background for the sub-agent: we are on {ref}. Keep changes under 7 files.",
    "Don't start anything new; finish {ref} today.",
    "Summary of {ref} for the standup, three bullets.",
)
STYLES = (
    ("MC #99927", "99927"),
    ("task 99927", "99927"),
    ("#99927", "99927"),
    ("99927", "99927"),
    ("task #42", "42"),
    ("#42", "42"),
    ("ticket CMB-0036", "CMB-0036"),
    ("CMB-0036", "CMB-0036"),
    ("iv-sz3sf", "iv-sz3sf"),
    ("mission 2025-12-21-billing-export", "2025-12-21-billing-export"),
    ("task sync", "sync"),
    ("＃９９９２７", "99927"),  # full-width
    ("task 999\u200b27", "99927"),  # zero-width space inside
    ("CMB\u20110036", "CMB-0036"),  # non-breaking hyphen
    ("ticket \u0421\u041c\u0412-0036", "CMB-0036"),  # Cyrillic С, М, В
    ("task \u0455\u0443n\u0441", "sync"),  # Cyrillic ѕ, у, с
    ("iv-\u0455z3sf", "iv-sz3sf"),  # Cyrillic ѕ
    ("bd-7f3\u0430", "bd-7f3a"),  # Cyrillic а
    ("\u039c\u0421 #99927", "99927"),  # Greek Μ, Cyrillic С
    ("task \u03bf\u0440s-12", "ops-12"),  # Greek ο, Cyrillic р
)
STYLE_ROWS = [(frame.format(ref=style), L(held)) for frame in FRAMES for style, held in STYLES]
ALL = CORPUS + STYLE_ROWS


def found(text: str) -> frozenset[str]:
    refs = set(references(text))
    return frozenset(h for h in HELD if h in refs)


def test_corpus_size() -> None:
    assert len(ALL) >= 200
    assert len(CORPUS) == len({p for p, _ in CORPUS}), "duplicate prompts"
    assert sum(1 for _, lab in ALL if not lab) >= 80
    assert sum(1 for _, lab in ALL if lab) >= 100


def test_corpus_no_false_denials_no_missed_references() -> None:
    false_denials = []
    missed = []
    for prompt, labels in ALL:
        got = found(prompt)
        if got - labels:
            false_denials.append((prompt, sorted(got - labels)))
        if labels - got:
            missed.append((prompt, sorted(labels - got)))
    assert false_denials == [], false_denials
    assert missed == [], missed


@pytest.mark.parametrize("text", ["9992\n7", "task 9992\n7", "#9992\\n7"])
def test_a_number_broken_by_a_line_break_is_still_found(text: str) -> None:
    assert "99927" in references(text)


def test_normalisation() -> None:
    assert normalize("ｔａｓｋ　＃４２") == "task #42"
    assert normalize("99\u200b9\u200d2\u20607\ufe0f") == "99927"
    assert normalize("CMB\u2013\u00ad0036") == "CMB-0036"
    assert normalize("plain ascii") == "plain ascii"


def test_configured_keywords_and_patterns() -> None:
    assert references("Do PROJ 42 now") == []
    assert references("Do PROJ 42 now", keywords=["proj"]) == ["42"]
    assert references("see T42 and T7.", patterns=[r"\bT(?P<id>\d+)\b"]) == ["42", "7"]
    assert references("see Z-9", patterns=[r"Z-\d"]) == ["Z-9"]



@pytest.mark.parametrize(("text", "held"), [
    ("Work on **99927** next.", "99927"),  # Markdown bold: emphasis, not a multiplication
    ("Work on *99927* next.", "99927"),
    ("Pick up task “42” and finish it.", "42"),  # typographic quotes around the id
    ("Pick up task ‘42’ and finish it.", "42"),
    ("Pick up task «42» and finish it.", "42"),
    ("Pick up task „42“ and finish it.", "42"),
    ("Finish tasks “41”, “42” and “7”.", "42"),
])
def test_emphasis_and_typographic_quotes_do_not_hide_a_reference(text: str, held: str) -> None:
    assert held in references(text), (text, references(text))


def test_a_product_is_still_a_value() -> None:
    assert "99927" not in references("Allocate 3*99927 bytes.")
