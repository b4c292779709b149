"""`pagekit dashboard` does not leak kernels: 20 visits in a real headless Chromium.

Every visit starts a kernel (about 200 MB). Half the visits leave the page properly
(Voila's beforeunload beacon shuts the kernel down); the other half close it the way a
crashed browser does, without unload handlers, while the page's progress bar polls a
running job: the kernel is shut down once no browser has been connected to it for
``--cull-disconnected`` seconds (5 here), however active its poller keeps it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from browser import launch, playwright_api, serve_dashboard
from conftest import new_project
from test_widgets import add, until

from pagekit.client import Client

pytestmark = pytest.mark.browser

VISITS = 20
CULL_DISCONNECTED = 5  # seconds, instead of 60
CULL_INTERVAL = 1  # seconds, instead of 60
# Measured on this test (2 cores): the server alone ~135 MiB, each kernel ~185 MiB, at
# most two kernels at once, peak ~510 MiB for the tree. 20 leaked kernels would be ~4 GB.
RSS_BOUND = 800 * 2**20


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _status(url: str) -> int:
    """The HTTP status of a GET of the dashboard page (a 200 has started a kernel)."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r:  # noqa: S310
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def kernels(pid: int) -> int:
    """Kernel processes under the dashboard server."""
    n = 0
    for p in _tree(pid)[1:]:
        try:
            if any("ipykernel" in part for part in p.cmdline()):
                n += 1
        except psutil.NoSuchProcess:
            pass
    return n


def rss(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def test_closed_pages_leave_no_kernels_behind(
    client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    sync_api = playwright_api()

    # A job that runs through the whole test: every visit's dashboard polls it.
    proj = new_project(client, ["overtime"])  # 60 s a page, two workers
    add(client, proj, 6, "kernels")
    job = client.process_pending(proj)
    log = tmp_path / "dashboard.log"
    started = time.monotonic()
    counts: list[int] = []
    peak = 0
    try:
        with (
            serve_dashboard(
                runtime_home,
                log,
                "--token",  # alone: a generated token, on loopback too
                PAGEKIT_DASHBOARD_CULL_DISCONNECTED=str(CULL_DISCONNECTED),
                PAGEKIT_DASHBOARD_CULL_INTERVAL=str(CULL_INTERVAL),
            ) as (url, server),
            sync_api.sync_playwright() as pw,
        ):
            token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]
            assert len(token) >= 16
            # Without the token the page is not served (no kernel starts): a login form.
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.build_opener(_NoRedirect).open(url.split("?")[0], timeout=30)
            assert refused.value.code == 302
            assert refused.value.headers["Location"].startswith("/login")
            assert kernels(server.pid) == 0

            browser = launch(pw)
            try:
                for visit in range(VISITS):
                    page = browser.new_page()
                    page.goto(url, timeout=120_000)
                    page.get_by_role("button", name="Create project").wait_for(timeout=120_000)
                    # The job's bar is drawn and polled in this visit's kernel.
                    sync_api.expect(page.get_by_text("Processing page").first).to_be_visible(
                        timeout=30_000
                    )
                    # Even visits leave the page (its beforeunload beacon goes out; headless
                    # Chromium's close(run_before_unload=True) does not send it), odd ones
                    # close it as a crashed browser would, without unload handlers.
                    if visit % 2 == 0:
                        page.goto("about:blank")
                    page.close()
                    counts.append(kernels(server.pid))
                    peak = max(peak, rss(server.pid))
            finally:
                browser.close()
            # Within one cull_disconnected (plus a check) of the last visit, while the
            # job still runs and is polled, no kernel is left (at most two allowed).
            until(lambda: kernels(server.pid) == 0, CULL_DISCONNECTED + 15, "kernels to go")
            assert client.status(job["task_id"])["status"] == "processing"
            left, left_rss = kernels(server.pid), rss(server.pid)
            text = log.read_text()
    finally:
        client.cancel(job["task_id"])
    elapsed = time.monotonic() - started
    print(
        f"\n{VISITS} visits in {elapsed:.0f}s; kernels after each visit: {counts}; "
        f"left: {left}; peak tree RSS {peak / 2**20:.0f} MiB; "
        f"after: {left_rss / 2**20:.0f} MiB"
    )
    assert left <= 2
    assert max(counts) <= 4, counts  # they never piled up
    assert peak < RSS_BOUND, f"{peak / 2**20:.0f} MiB"
    # Properly closed pages: shut down by their beacon (Voila alone refuses it: 403).
    assert "403 POST /voila/api/shutdown" not in text
    # Crashed pages: shut down for want of a browser, though their bars kept polling.
    assert text.count("no browser connected") == VISITS // 2
    assert text.count("Kernel shutdown:") == VISITS


def test_one_visit_more_than_max_kernels_is_refused_until_a_kernel_goes(
    client: Client, runtime_home: Path, tmp_path: Path
) -> None:
    log = tmp_path / "dashboard.log"
    with serve_dashboard(
        runtime_home,
        log,
        "--max-kernels",
        "1",
        PAGEKIT_DASHBOARD_CULL_DISCONNECTED=str(CULL_DISCONNECTED),
        PAGEKIT_DASHBOARD_CULL_INTERVAL=str(CULL_INTERVAL),
    ) as (url, server):
        assert _status(url) == 200  # rendered; no browser will connect to it
        assert kernels(server.pid) == 1
        assert _status(url) == 503
        assert kernels(server.pid) == 1
        # The first page's kernel goes for want of a browser: the next visit is served.
        until(lambda: _status(url) == 200, CULL_DISCONNECTED + 15, "a visit to be served")
        assert kernels(server.pid) == 1
    assert "Refusing a visit: 1 kernels running" in log.read_text()
