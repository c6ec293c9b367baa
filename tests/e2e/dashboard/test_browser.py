"""User flow: a person opens the dashboard's Compare page in a real browser.

The dashboard is the one the stack itself serves (part ``dashboard`` of
:class:`hearby.up.Stack`, as ``hearby up`` starts it, finding the services through the
stack's shared ``HEARBY_*_ADDRESS`` variables). Debian's Chromium, headless with a fresh
profile and nothing downloaded, opens a Compare link naming two versions and a seed. The
test drives it over the DevTools protocol, because Streamlit renders in the browser after
its websocket answers: it waits until the page's visible text holds every neighbour id the
ranker returns for each version (in that version's column), then saves a screenshot of
exactly that state. The dashboard restarted alone (``Stack.restart``) serves the page again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from websockets.sync.client import ClientConnection, connect

from services.ranker.client import RankerClient
from tests.e2e.dashboard.conftest import DashboardStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CHROMIUM = Path("/usr/bin/chromium")
K = 5
# The page's size in CSS pixels (and the screenshot's in pixels): tall enough for both
# lists of K neighbours with their players.
WIDTH, HEIGHT = 1600, 3000
# Seconds the browser may take to start, and the page to show both lists (a cold Streamlit
# session imports the page's modules and calls four services).
START_SECONDS = 60.0
RENDER_SECONDS = 180.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, one websocket).

    Args:
        profile: A fresh ``--user-data-dir``; Chromium writes its DevTools port there.
        log: File for Chromium's own output.
    """

    def __init__(self, profile: Path, log: Path) -> None:
        argv = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--disable-quic",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            # The OS picks the port; Chromium writes it to DevToolsActivePort.
            "--remote-debugging-port=0",
            "about:blank",
        ]
        self.log = log
        self._ids = itertools.count(1)
        self._resources = contextlib.ExitStack()
        with log.open("wb") as output:
            self.proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        try:
            self._socket: ClientConnection = self._resources.enter_context(
                connect(self._page_socket(profile), max_size=None)
            )
            # The page gets the window's size less the browser's frame; fix it instead.
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.close()
            raise

    def _page_socket(self, profile: Path) -> str:
        """The DevTools websocket URL of the browser's one page."""
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_SECONDS
        while True:
            assert self.proc.poll() is None, f"chromium exited:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no DevTools port:\n{self.log.read_text()[-3000:]}"
            lines = active.read_text().split() if active.exists() else []
            if lines:
                with urllib.request.urlopen(f"http://127.0.0.1:{lines[0]}/json/list") as reply:
                    pages = [t for t in json.load(reply) if t["type"] == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.2)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events arriving meanwhile are dropped)."""
        call_id = next(self._ids)
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == call_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return dict(message["result"])

    def text(self) -> str:
        """The page's visible text (what a person reads, not hidden markup)."""
        result = self.call("Runtime.evaluate", expression="document.body.innerText")
        return str(result["result"].get("value", ""))

    def screenshot(self, path: Path) -> None:
        """Saves what the window shows as PNG."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Closes the connection and stops Chromium."""
        self._resources.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    started = Browser(tmp_path / "chromium-profile", tmp_path / "chromium.log")
    try:
        yield started
    finally:
        started.close()


def _neighbour_ids(stack: DashboardStack, seed: str) -> dict[str, list[str]]:
    """What the ranker answers for ``seed`` in each version: the ids the page must show."""

    async def ask() -> dict[str, list[str]]:
        async with grpc.aio.insecure_channel(stack.stack.ranker) as channel:
            client = RankerClient(channel)
            return {
                v: (await client.similar(K, track_id=seed, version=v)).track_ids
                for v in stack.versions
            }

    return asyncio.run(ask())


def _columns(text: str, headings: list[str]) -> list[str] | None:
    """The page text under each heading, up to the next one; None until all are shown."""
    starts = [text.find(heading) for heading in headings]
    if -1 in starts or starts != sorted(starts):
        return None
    return [text[start:end] for start, end in zip(starts, [*starts[1:], len(text)], strict=True)]


def _wait_for_lists(browser: Browser, headings: list[str], expected: list[list[str]]) -> list[str]:
    """Polls the page until each column shows its ids, twice in a row (rendering done)."""
    deadline = time.monotonic() + RENDER_SECONDS
    complete_before = False
    text = ""
    while time.monotonic() < deadline:
        text = browser.text()
        columns = _columns(text, headings)
        complete = columns is not None and all(
            all(track_id in column for track_id in ids)
            for column, ids in zip(columns, expected, strict=True)
        )
        if complete and complete_before and columns is not None:
            return columns
        complete_before = complete
        time.sleep(0.5)
    raise AssertionError(f"the lists did not appear in {RENDER_SECONDS:.0f} s; page:\n{text}")


def _open_compare(
    browser: Browser, dashboard_stack: DashboardStack, seed: str
) -> tuple[str, dict[str, list[str]], list[str]]:
    """Opens a Compare link of both versions and ``seed``; waits until both lists show.

    Returns:
        The URL, each version's expected neighbour ids, and the page text of each column.
    """
    version_a, version_b = dashboard_stack.versions[:2]
    expected = _neighbour_ids(dashboard_stack, seed)
    assert all(len(ids) == K for ids in expected.values()), expected
    query = urllib.parse.urlencode({"a": version_a, "b": version_b, "seed": seed, "k": K})
    url = f"{dashboard_stack.stack.dashboard_url}compare?{query}"
    browser.call("Page.enable")
    browser.call("Page.navigate", url=url)
    headings = [f"A: {version_a}", f"B: {version_b}"]
    columns = _wait_for_lists(browser, headings, [expected[version_a], expected[version_b]])
    return url, expected, columns


def test_compare_in_chromium_shows_both_versions_lists_and_is_saved_as_a_screenshot(
    dashboard_stack: DashboardStack, browser: Browser, tmp_path: Path
) -> None:
    assert "dashboard" in dashboard_stack.stack.parts, "hearby up's stack serves the dashboard"
    seed = dashboard_stack.track_ids[0]
    url, expected, columns = _open_compare(browser, dashboard_stack, seed)
    screenshot = tmp_path / "compare.png"
    browser.screenshot(screenshot)
    print(f"\nCompare page {url}\nscreenshot: {screenshot}")

    page = browser.text()
    assert "Compare two versions" in page and seed in page
    for column, version in zip(columns, dashboard_stack.versions[:2], strict=True):
        # Each id in its own version's column, in the ranker's order.
        positions = [column.index(track_id) for track_id in expected[version]]
        assert positions == sorted(positions), (version, expected[version], column)
    # /compare is the page itself (not "Page not found" and the landing page), and the
    # sidebar lists the navigation's pages by their titles.
    assert "Page not found" not in page
    assert "Rate (blind)" in page and "Review" in page and "Metrics" in page
    # No page error and no traceback.
    assert "Traceback" not in page and "unavailable" not in page
    image = screenshot.read_bytes()
    assert image.startswith(PNG_MAGIC)
    # A blank page's PNG compresses to a few KiB; two rendered lists are far more.
    assert len(image) > 50_000, len(image)
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (WIDTH, HEIGHT)


def test_the_dashboard_restarted_alone_serves_the_compare_page_again(
    dashboard_stack: DashboardStack, browser: Browser
) -> None:
    stack = dashboard_stack.stack
    before = stack.parts["dashboard"].process.proc
    restarted = stack.restart("dashboard")
    assert restarted.process.proc is not before and restarted.process.alive()
    # Same URL as before the restart: bookmarks and open tabs keep working.
    assert restarted.address == stack.dashboard_url
    _open_compare(browser, dashboard_stack, dashboard_stack.track_ids[1])
