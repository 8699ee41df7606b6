"""The dashboard in a real browser: Playwright for Python driving the system's Chromium (Debian's
``chromium`` package: no browser download) against a real ``leasehold serve`` process on a
loopback port over a SQLite ledger. Changes are made by the CLI as OS processes — directly on
the ledger file (the server notices them by following the event log's head) and through the
server.

Skips with the reason when Chromium or Playwright is missing, unless
``LEASEHOLD_REQUIRE_BROWSER=1`` (CI), which makes that a failure. Screenshots of every page go
to ``$LEASEHOLD_ARTIFACTS`` (default ``.artifacts/dashboard/`` in the repository, ignored by
git); with ``LEASEHOLD_DOCS_SCREENSHOTS=1`` the Now and Task pages are also written to
``docs/`` for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests import conftest
from tests.server import ServerProcess, make_token

CHROMIUM = os.environ.get("LEASEHOLD_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("LEASEHOLD_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(os.environ.get("LEASEHOLD_ARTIFACTS", conftest.REPO / ".artifacts" / "dashboard"))
DOCS = conftest.REPO / "docs"
#: Generous: the page updates within a second on an idle machine; the suite runs on loaded ones.
LIVE_TIMEOUT_MS = 10_000


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if REQUIRED:
            pytest.fail(f"LEASEHOLD_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


class Site:
    """A ``leasehold serve`` process over a fresh SQLite ledger, its tokens, and the CLI."""

    def __init__(self, folder: Path, db: str | None = None, seed: bool = True) -> None:
        from leasehold import Ledger

        self.db = db or str(folder / "ledger.db")
        Ledger.open(self.db, create=True).close()
        self.tokens = {"admin": make_token(self.db, "alice", "admin"), "agent": make_token(self.db, "bob"),
                       "reader": make_token(self.db, "carol", "reader"), "spare": make_token(self.db, "erin")}
        if seed:
            self._seed()
        self.env = {k: v for k, v in os.environ.items() if k not in conftest._IDENTITY_VARS}
        self.env["HOME"] = str(folder)
        self.server = ServerProcess(self.db, dict(self.env))
        self.url = self.server.url

    def _seed(self) -> None:
        """A fleet at work: several holders, a lease left to expire unswept, a file
        reservation, a ready queue and a blocked task (what the screenshots show)."""
        from leasehold import Ledger, paths

        with Ledger.open(self.db) as ledger:
            ledger.claim("api-gateway", "maria:7f3a", ttl=1200, title="Rate-limit the gateway")
            ledger.claim("billing-42", "maria:7f3a", ttl=900, title="Invoice rounding")
            ledger.claim("search-index", "kenji:b21", ttl=2700, title="Rebuild the search index")
            ledger.claim("docs-sync", "ci-bot:nightly", ttl=2, title="Sync the docs site")
            paths.reserve(ledger, ["src/billing/**"], "maria:7f3a", 1200, reason="invoice rounding")
            ledger.add("flaky-ci", title="Quarantine the flaky CI job", priority=5)
            ledger.add("changelog", title="Write the 1.4 changelog", priority=2)
            ledger.add_blocked("release-1.4", ["billing-42", "changelog"], title="Cut release 1.4")

    def cli(self, *args: str, remote: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the CLI: on the ledger file directly, or through the server with a token."""
        env = dict(self.env)
        if remote:
            env["LEASEHOLD_DB"], env["LEASEHOLD_TOKEN"] = self.url, self.tokens[remote]
        else:
            env["LEASEHOLD_DB"] = self.db
        done = subprocess.run([conftest.LEASEHOLD, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (args, done.returncode, done.stderr)
        return done

    def ledger(self):  # type: ignore[no-untyped-def]
        from leasehold import Ledger

        return Ledger.open(self.db)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    site = Site(tmp_path_factory.mktemp("dashboard"))
    yield site
    site.server.stop()


@pytest.fixture
def context(browser):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


def sign_in(ctx, site: Site, role: str):  # type: ignore[no-untyped-def]
    page = ctx.new_page()
    page.goto(site.url + "/login")
    page.get_by_label("Token").fill(site.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/")
    return page


def shoot(page, name: str, docs: str | None = None) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    if docs and os.environ.get("LEASEHOLD_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(target, DOCS / docs)


def seconds_left(text: str) -> int:
    found = re.fullmatch(r"(?:(\d+)h )?(?:(\d+)m )?(\d+)s left|(\d+)h (\d+)m left", text.strip())
    assert found, text
    h, m, s, h2, m2 = found.groups()
    if h2:
        return int(h2) * 3600 + int(m2) * 60
    return int(h or 0) * 3600 + int(m or 0) * 60 + int(s)


def test_sign_in_keeps_the_token_in_a_strict_httponly_cookie(context, site: Site) -> None:
    page = context.new_page()
    page.goto(site.url + "/tickets")
    assert "/login" in page.url  # not signed in: to the sign-in page
    shoot(page, "login")
    page.get_by_label("Token").fill("lh_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    assert "not valid" in page.get_by_role("alert").inner_text()
    page.get_by_label("Token").fill(site.tokens["reader"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/tickets")  # back where the browser was going
    page.keyboard.press("Tab")  # the keyboard's first stop skips the header
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    (cookie,) = [c for c in context.cookies() if c["name"] == "leasehold_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    assert not [c for c in context.cookies() if c["name"] == "leasehold_session"]
    assert page.request.get(site.url + "/ui/events").status == 401  # no stream without a session


def test_a_cli_claim_appears_live_counts_down_and_a_release_removes_it(context, site: Site) -> None:
    page = sign_in(context, site, "reader")
    page.evaluate("window.__sameDocument = true")
    row = page.locator('tr[data-lease="live-1"]')
    assert row.count() == 0
    started = time.monotonic()
    # Directly on the ledger file: the server hears of it only by following the event log.
    site.cli("claim", "live-1", "--actor", "bob", "--session", "cli", "--ttl", "10m", "--title", "Live one")
    row.wait_for(timeout=LIVE_TIMEOUT_MS)
    appeared = time.monotonic() - started
    print(f"claim on the ledger file -> row on the page: {appeared:.2f} s (CLI start-up included)")
    assert "Live one" in row.inner_text() and "bob:cli" in page.locator('[data-holder="bob:cli"] h3').inner_text()
    countdown = row.locator(".countdown")
    first = seconds_left(countdown.inner_text())
    assert 560 < first <= 600
    page.wait_for_function(
        """([sel, first]) => {
             const el = document.querySelector(sel);
             const m = el && el.textContent.match(/(\\d+)m (\\d+)s left/);
             return m && Number(m[1]) * 60 + Number(m[2]) < first;
           }""", arg=['tr[data-lease="live-1"] .countdown', first], timeout=LIVE_TIMEOUT_MS)
    # A lease that runs out while the page is open is marked at once, in words, not swept yet.
    site.cli("claim", "brief-1", "--actor", "bob", "--session", "cli", "--ttl", "2s")
    brief = page.locator('tr[data-lease="brief-1"]')
    brief.wait_for(timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function("sel => { const el = document.querySelector(sel); return el && el.classList.contains('expired'); }",
                           arg='tr[data-lease="brief-1"]', timeout=LIVE_TIMEOUT_MS)
    assert brief.locator(".badge-expired").is_visible() and "expired" in brief.locator(".countdown").inner_text()
    assert page.locator("#expired-count").inner_text() == "2"  # with docs-sync's
    expired = page.locator('tr[data-lease="docs-sync"]')  # expired before the page was rendered
    assert "expired" in (expired.get_attribute("class") or "") and expired.locator(".badge-expired").is_visible()
    shoot(page, "now", docs="dashboard-now.png")
    # Through the server, with the agent's token: the release removes the row.
    site.cli("release", "live-1", "--session", "cli", remote="agent")
    row.wait_for(state="detached", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened


def test_the_task_page_shows_a_takeover_after_expiry_with_both_fences(context, site: Site) -> None:
    site.cli("claim", "deploy-7", "--actor", "bob", "--session", "a1", "--ttl", "1s", "--title", "Deploy 7")
    with site.ledger() as ledger:
        conftest.wait_for(lambda: not ledger.show("deploy-7").lease_valid(ledger.now()), what="the expiry")
    site.cli("claim", "deploy-7", "--actor", "dave", "--session", "b2", "--ttl", "10m")
    site.cli("extend", "deploy-7", "--actor", "dave", "--session", "b2")
    page = sign_in(context, site, "reader")
    page.get_by_label("Task", exact=True).fill("deploy-7")
    page.get_by_role("button", name="Open").click()
    page.wait_for_url(site.url + "/tasks/deploy-7")
    first = page.locator('#timeline g.bar[data-fence="1"]')
    second = page.locator('#timeline g.bar[data-fence="2"]')
    assert first.get_attribute("data-holder") == "bob:a1" and first.get_attribute("data-ending") == "taken_over"
    assert second.get_attribute("data-holder") == "dave:b2" and second.get_attribute("data-ending") == "held"
    note = page.locator(".takeover-note").inner_text()
    assert "dave:b2 (fence 2)" in note and "bob:a1 (fence 1)" in note
    assert page.locator("#timeline line.takeover").count() == 1
    rows = page.locator("#leases-table tbody tr")
    assert rows.nth(0).inner_text().split()[:2] == ["1", "bob:a1"]
    assert "taken over by dave:b2" in rows.nth(0).inner_text() and "took over from bob:a1" in rows.nth(1).inner_text()
    kinds = page.locator("table.events .kind").all_inner_texts()
    assert kinds[:3] == ["extended", "claimed", "claimed"]
    page.get_by_role("button", name="Zoom in").click()
    assert page.locator("#timeline").get_attribute("width") == "200%"
    page.get_by_role("button", name="Fit").click()
    shoot(page, "task", docs="dashboard-task.png")


def test_a_reader_sees_no_admin_controls_and_a_forged_admin_post_is_refused(context, site: Site) -> None:
    site.cli("claim", "guarded", "--actor", "bob", "--session", "g", "--ttl", "10m")
    page = sign_in(context, site, "reader")
    page.locator('tr[data-lease="guarded"]').wait_for(timeout=LIVE_TIMEOUT_MS)
    assert page.get_by_role("link", name="Admin").count() == 0
    assert page.get_by_text("Force release").count() == 0
    assert page.request.get(site.url + "/admin").status == 403
    missing = page.goto(site.url + "/tasks/no-such-task")
    assert missing is not None and missing.status == 404 and "not found" in page.get_by_role("alert").inner_text()
    page.goto(site.url + "/")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    forged = page.request.post(site.url + "/admin/force-release", headers={"Origin": site.url},
                               form={"csrf": csrf, "task_id": "guarded", "reason": "forged"})
    assert forged.status == 403 and "reader token may not" in forged.text()
    with site.ledger() as ledger:
        assert ledger.show("guarded").lease_holder == "bob:g"  # untouched
        refused = [e for e in ledger.events(None, 20) if e.kind == "auth_refused"]
        assert refused and refused[-1].actor == "carol" and refused[-1].details["op"] == "force_release"
    # An admin's session is not usable from another site: no CSRF token, or a foreign Origin.
    admin = sign_in(context, site, "admin")
    token = admin.locator('input[name="csrf"]').first.get_attribute("value")
    for headers, form in (({"Origin": site.url}, {"task_id": "guarded", "reason": "x"}),
                          ({"Origin": "https://evil.example"}, {"csrf": token, "task_id": "guarded", "reason": "x"})):
        assert admin.request.post(site.url + "/admin/force-release", headers=headers, form=form).status == 403
    with site.ledger() as ledger:
        assert ledger.show("guarded").lease_holder == "bob:g"


def test_an_admin_force_releases_with_a_reason_and_it_is_logged(context, site: Site) -> None:
    from leasehold import paths

    site.cli("claim", "stuck-1", "--actor", "bob", "--session", "crashed", "--ttl", "1h", "--title", "Stuck")
    with site.ledger() as ledger:
        paths.reserve(ledger, ["src/app/**"], "bob:crashed", 3600, reason="refactor")
    page = sign_in(context, site, "admin")
    page.locator('tr[data-lease="stuck-1"]').get_by_role("link", name="Force release…").click()
    page.wait_for_url(re.compile(r".*/admin\?task=stuck-1$"))
    assert page.get_by_label("Task id").input_value() == "stuck-1"
    shoot(page, "admin")
    form = page.locator("#force-release")
    form.get_by_role("button").click()  # no reason: the browser refuses to send it
    assert page.url.endswith("/admin?task=stuck-1")
    assert form.get_by_label("Reason (required)").evaluate("el => el.validity.valueMissing")
    form.get_by_label("Reason (required)").fill("session crashed at 14:02")
    form.get_by_role("button").click()
    assert "released stuck-1" in page.get_by_role("status").first.inner_text()
    paths_form = page.locator("#force-release-paths")
    paths_form.get_by_label("Path pattern").fill("src/app/**")
    paths_form.get_by_label("Reason (required)").fill("the same crash")
    paths_form.get_by_role("button").click()
    assert "released src/app/** (held by bob:crashed)" in page.get_by_role("status").first.inner_text()
    other = context.browser.new_context()
    try:
        erin = sign_in(other, site, "spare")
        spare = page.locator("tr", has_text="erin")
        spare.get_by_role("button", name=re.compile("Revoke")).click()
        assert "revoked" in page.get_by_role("status").first.inner_text()
        erin.reload()  # a revoked token signs its browser out
        assert "/login" in erin.url
    finally:
        other.close()
    with site.ledger() as ledger:
        task = ledger.show("stuck-1")
        assert task.lease_holder is None and task.status == "open"
        (event,) = [e for e in ledger.events("stuck-1") if e.kind == "force_released"]
        assert event.details["reason"] == "session crashed at 14:02" and event.holder == "alice:dashboard"
        assert event.details["holder"] == "bob:crashed"
        kinds = [e.kind for e in ledger.events(None, 10)]
        assert "path_force_released" in kinds and "token_revoked" in kinds
        assert [r.pattern for r in paths.active(ledger)] == ["src/billing/**"]
        assert [t.state(ledger.now()) for t in ledger.tokens.list() if t.actor == "erin"] == ["revoked"]
    # the lease is gone from Now too, and the task page shows the force-release with its reason
    page.goto(site.url + "/tasks/stuck-1")
    assert page.locator('#timeline g.bar[data-fence="1"]').get_attribute("data-ending") == "force_released"
    assert "session crashed at 14:02" in page.locator("#leases-table").inner_text()


def test_tickets_page_and_phone_width(browser, context, site: Site) -> None:
    with site.ledger() as ledger:
        ledger.tickets.add_namespace("CMB", "{prefix}-{seq}", by="alice:setup")
        ledger.tickets.reserve("CMB", "bob:t", count=2)
        ledger.feed.post("actionable", "Fix the flaky build", "bob:t", reserve="CMB")
    desktop = sign_in(context, site, "reader")
    desktop.goto(site.url + "/tickets")
    assert desktop.locator('tr[data-prefix="CMB"] strong').inner_text() == "CMB-4"
    shoot(desktop, "tickets")
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = sign_in(ctx, site, "reader")
        shoot(page, "now-phone")
        page.goto(site.url + "/tickets")
        assert page.locator('tr[data-prefix="CMB"]').inner_text().count("CMB-4") == 1  # the next number
        assert page.locator('tr[data-item="CMB-3"]').count() == 1
        assert "No drift" in page.locator("#live").inner_text()
        shoot(page, "tickets-phone")
        # nothing wider than the phone's screen but the tables' own cards
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    finally:
        ctx.close()


def test_over_postgresql_pages_of_leases_and_a_direct_write_appears_live(browser, pg_url: str,
                                                                         tmp_path: Path) -> None:
    """Over PostgreSQL: 130 leases make two pages (100 + 30), holders most recently active
    first; a claim written directly on the database by the CLI appears on the open page."""
    from leasehold import Ledger

    with Ledger.open(pg_url) as ledger:
        for i in range(130):
            ledger.claim(f"p-{i:03d}", f"w{i % 13}:s", ttl=3600)
        ledger.extend("p-000", "w0:s")  # w0:s: the most recently active holder
    site = Site(tmp_path, pg_url, seed=False)
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = sign_in(ctx, site, "reader")
        assert page.locator("tr[data-lease]").count() == 100
        assert page.locator("section.holder h3 .holder-name").first.inner_text() == "w0:s"
        assert "Page 1 of 2" in page.locator("nav.pager").inner_text()
        page.get_by_role("link", name="Next →").click()
        page.wait_for_url(site.url + "/?page=2")
        assert page.locator("tr[data-lease]").count() == 30
        last = page.locator("tr[data-lease]").last.get_attribute("data-lease")
        page.evaluate("window.__sameDocument = true")
        site.cli("claim", "pg-live", "--actor", "zed", "--session", "z", "--ttl", "5m")
        # zed:z is now the most recently active holder: first on page 1, so every lease moves
        # one place on, and page 2 (open) gains the lease that page 1 no longer has room for
        page.locator("tr[data-lease]").nth(30).wait_for(timeout=LIVE_TIMEOUT_MS)
        assert page.locator("tr[data-lease]").last.get_attribute("data-lease") == last
        assert page.evaluate("window.__sameDocument") is True
        page.goto(site.url + "/")
        assert page.locator("section.holder h3 .holder-name").first.inner_text() == "zed:z"
    finally:
        ctx.close()
        site.server.stop()


def test_many_tabs_share_one_event_stream_and_all_update(browser, site: Site) -> None:
    """A browser opens at most six connections to a server: with an event stream per tab, a
    seventh tab of the dashboard would never load. Eight tabs load, and a claim written on the
    ledger file reaches the first and the last without a reload, also once the tab that held
    the stream is closed."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        tabs = [sign_in(ctx, site, "reader")]
        for _ in range(7):
            tab = ctx.new_page()
            tab.goto(site.url + "/", timeout=LIVE_TIMEOUT_MS)
            tabs.append(tab)
        for tab in (tabs[0], tabs[-1]):
            tab.evaluate("window.__sameDocument = true")
        with site.ledger() as ledger:
            ledger.claim("tabs-1", "bob:tabs", ttl=600)
        for tab in (tabs[-1], tabs[0]):
            tab.locator('tr[data-lease="tabs-1"]').wait_for(timeout=LIVE_TIMEOUT_MS)
            assert tab.evaluate("window.__sameDocument") is True
        tabs.pop(0).close()  # the tab that held the stream: another takes it over
        with site.ledger() as ledger:
            ledger.claim("tabs-2", "bob:tabs", ttl=600)
        tabs[-1].locator('tr[data-lease="tabs-2"]').wait_for(timeout=LIVE_TIMEOUT_MS)
        assert tabs[-1].evaluate("window.__sameDocument") is True
    finally:
        ctx.close()


def test_markup_in_names_stays_text_and_odd_task_ids_open_their_pages(context, site: Site) -> None:
    """Titles, actor and session names, reasons, feed subjects and path patterns written with
    HTML and script in them show as text on every page and run nothing; task ids ``..`` and
    ``a/../../admin`` (valid ids) open their own Task pages, not the pages they resemble; long
    unbroken names wrap instead of widening the page."""
    from leasehold import paths

    evil = '<img src=x onerror="window.__pwned=1">"\'</textarea><script>window.__pwned=2</script>'
    with site.ledger() as ledger:
        ledger.claim("mark-1", "<b>mallory</b>:s", ttl=600, title=evil)
        ledger.claim("..", "bob:dots", ttl=600, title="Dots")
        ledger.claim("a/../../admin", "bob:dots", ttl=600, title="Slashes")
        ledger.claim("long-" + "y" * 150, "a" * 100 + ":s", ttl=600, title="x" * 300)  # no place to break
        paths.reserve(ledger, ["src/" + "z" * 200 + "/**"], "bob:dots", 600, reason="r" * 300)
        ledger.force_release("mark-1", evil, "alice:review")
        ledger.claim("mark-1", "<b>mallory</b>:s", ttl=600, title=evil)
        paths.reserve(ledger, ["src/<i>x</i>/**"], "<b>mallory</b>:s", 600, reason=evil)
        ledger.tickets.add_namespace("MRK", "{prefix}-{seq}", by="alice:setup")
        ledger.feed.post("actionable", evil, "<b>mallory</b>:s", reserve="MRK")
    page = sign_in(context, site, "admin")
    elsewhere: list[str] = []
    page.on("request", lambda r: r.url.startswith(site.url + "/") or elsewhere.append(r.url))
    for path in ("/", "/tasks/mark-1", "/tickets", "/admin?task=" + evil + "&pattern=" + evil + "&done=" + evil):
        response = page.goto(site.url + path)
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("main img, main script, main b, main i").count() == 0, path
    assert elsewhere == []  # nothing fetched from anywhere else
    for path in ("/", "/tasks/long-" + "y" * 150):  # long words wrap: nothing wider than the window
        page.goto(site.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280, path
    page.goto(site.url + "/tasks/mark-1")
    assert evil in page.locator("#leases-table").inner_text()  # the reason, as text
    # and in the events' details, as JSON but not mangled into \u003c and \u0027
    assert "'</textarea><script>window.__pwned=2</script>" in page.locator("table.events").inner_text()
    page.goto(site.url + "/")
    assert page.locator('tr[data-lease="mark-1"]').inner_text().count(evil) == 1
    for task_id in ("..", "a/../../admin"):
        page.goto(site.url + "/")
        page.locator(f'tr[data-lease="{task_id}"] td[data-label="Task"] a').click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == f"Task {task_id}", page.url
        page.get_by_label("Task", exact=True).fill(task_id)
        page.get_by_role("button", name="Open").click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == f"Task {task_id}", page.url


def test_a_tab_signed_in_again_gets_live_updates_after_a_revocation(browser, site: Site) -> None:
    """The tab that held the shared event stream is signed out (its token revoked): it lets
    the stream go, so another tab, signed in again with a new token, opens its own and sees
    changes live (it would otherwise wait for the stale tab to close)."""
    site.tokens["frank"] = make_token(site.db, "frank", "reader")
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        stale = sign_in(ctx, site, "frank")
        other = ctx.new_page()
        other.goto(site.url + "/")
        with site.ledger() as ledger:
            (info,) = [t for t in ledger.tokens.list() if t.actor == "frank"]
            ledger.tokens.revoke(info.id)
            ledger.claim("revoked-1", "bob:rv", ttl=600)  # a change: the open pages look again
        for page in (stale, other):
            page.wait_for_function("() => /Signed out|stopped/.test(document.getElementById('live-status').textContent)",
                                   timeout=LIVE_TIMEOUT_MS)
        other.goto(site.url + "/login")
        other.get_by_label("Token").fill(site.tokens["reader"])
        other.get_by_role("button", name="Sign in").click()
        other.wait_for_url(site.url + "/")
        other.evaluate("window.__sameDocument = true")
        with site.ledger() as ledger:
            ledger.claim("revoked-2", "bob:rv", ttl=600)
        other.locator('tr[data-lease="revoked-2"]').wait_for(timeout=LIVE_TIMEOUT_MS)
        assert other.evaluate("window.__sameDocument") is True
    finally:
        ctx.close()


def test_a_busy_ledger_does_not_make_the_page_fetch_itself_back_to_back(context, site: Site) -> None:
    """Writes without pause move the head at every look (0.1 s): the open page fetches itself
    at most about twice a second, not at each change, and still ends on the newest state."""
    import socket
    import threading
    from urllib.parse import urlsplit

    page = sign_in(context, site, "reader")
    page.wait_for_load_state("networkidle")
    page.evaluate("""() => { window.__fetches = 0; const real = window.fetch;
                             window.fetch = function () { window.__fetches++; return real.apply(this, arguments); }; }""")
    parts = urlsplit(site.url)
    stream = socket.create_connection((parts.hostname, parts.port), timeout=60)
    stream.sendall(f"GET /ui/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                   f"Cookie: leasehold_session={site.tokens['reader']}\r\n\r\n".encode())
    stop = threading.Event()
    with site.ledger() as ledger:
        ledger.claim("busy-1", "bob:busy", ttl=600)

    def write() -> None:
        with site.ledger() as ledger:
            while not stop.is_set():
                ledger.extend("busy-1", "bob:busy")  # a heartbeat: an event each

    writer = threading.Thread(target=write)
    try:
        data = b""
        while b"event: hello" not in data:
            data += stream.recv(4096)
        data = b""
        writer.start()
        first = None
        while data.count(b"event: change") < 15:  # the server saw the head move 15 times
            data += stream.recv(4096)
            first = first or time.monotonic()
        elapsed = time.monotonic() - first
    finally:
        stop.set()
        if writer.is_alive():
            writer.join(30)
        stream.close()
    count = page.evaluate("window.__fetches")
    assert count <= 3 + 2 * elapsed + 1, (count, elapsed)  # a burst of 3, then 2 a second
    with site.ledger() as ledger:
        ledger.claim("busy-last", "bob:busy", ttl=600)
    page.locator('tr[data-lease="busy-last"]').wait_for(timeout=LIVE_TIMEOUT_MS)
