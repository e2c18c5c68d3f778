"""The playground page in a real browser: Playwright driving Debian's Chromium.

``make test`` installs chromium with apt-get; where /usr/bin/chromium is missing these
tests skip and say so. Every wait is on a condition (generous timeouts for a loaded CI
machine), never a fixed sleep.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT = 60_000  # ms: conditions, not sleeps

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="chromium is not installed (make test installs it with apt-get)",
)


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from capas.playground import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", server
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def heatmap_pixels(page):
    return page.evaluate(
        "Array.from(document.getElementById('heatmap').getContext('2d').getImageData(0, 0, 300, 300).data)"
        ".filter((_, i) => i % 97 === 0)"
    )


def test_play_loss_falls_heatmap_changes_dataset_spec_csv(server, browser, tmp_path):
    url, _ = server
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{url}/?problem=circle&hidden=6,4&lr=0.1&optimizer=adam&n=300")
    page.wait_for_function("window.playgroundState.frame !== null", timeout=WAIT)
    before = heatmap_pixels(page)
    page.click("#play")
    page.wait_for_function(
        "(() => { const l = window.playgroundState.losses; return l.length > 30 &&"
        " l[l.length - 1][1] < 0.6 * l[0][1]; })()",
        timeout=WAIT,
    )
    assert heatmap_pixels(page) != before
    assert "problem=circle" in page.url
    page.click("#play")  # pause
    page.wait_for_function("!window.playgroundState.running", timeout=WAIT)

    page.select_option("#problem", "xor")
    page.wait_for_function(
        "window.playgroundState.settings.problem === 'xor' && window.playgroundState.epoch === 0", timeout=WAIT
    )
    assert "problem=xor" in page.url

    page.fill("#spec", "2-8-8-2")
    page.click("#apply-spec")
    page.wait_for_function("window.playgroundState.structure.length === 4", timeout=WAIT)
    assert "8 d8 d8 d2" in page.text_content("#network-info") or "2-8-8-2" in page.url.replace("%2D", "-")
    page.fill("#spec", "2-8-zz-2")
    page.click("#apply-spec")
    page.wait_for_selector("#message:not([hidden])", timeout=WAIT)
    assert "Error" in page.text_content("#message")
    assert page.evaluate("window.playgroundState.structure.length") == 4  # the last good network stays

    csv = tmp_path / "points.csv"
    csv.write_text("x1,x2,label\n" + "\n".join(f"{i % 9 - 4},{i % 7 - 3},{int(i % 9 > 4)}" for i in range(90)))
    page.set_input_files("#csv", str(csv))
    page.wait_for_function("document.getElementById('upload-name').textContent.includes('points.csv')", timeout=WAIT)
    assert page.evaluate("window.playgroundState.settings.problem") == "upload"
    page.click("#step")
    page.wait_for_function("window.playgroundState.epoch === 1", timeout=WAIT)
    page.click("#export")
    page.wait_for_function("document.getElementById('command').textContent.startsWith('capas train')", timeout=WAIT)
    assert not errors, errors
    page.close()


def test_two_tabs_train_at_once(server, browser):
    url, _ = server
    one, two = browser.new_page(), browser.new_page()
    one.goto(f"{url}/?problem=spiral&hidden=8,8")
    two.goto(f"{url}/?problem=gaussians&hidden=3&seed=2")
    for page in (one, two):
        page.wait_for_function("window.playgroundState.frame !== null", timeout=WAIT)
        page.click("#play")
    for page in (one, two):
        page.wait_for_function("window.playgroundState.epoch > 20", timeout=WAIT)
    assert one.evaluate("window.playgroundState.settings.problem") == "spiral"
    assert two.evaluate("window.playgroundState.settings.problem") == "gaussians"
    one.close()
    two.close()
