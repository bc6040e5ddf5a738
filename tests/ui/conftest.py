"""Browser tests of the web UI: the real platform (`python -m tradeplane.platform up`, every
service and the gateway on free ports) serving the UI built by scripts/build_web.sh, driven by
Playwright in Debian's headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The tests import ui_support by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from ui_support import (
    BROWSER_TIME_ZONE,
    BUILD_SCRIPT,
    CHROMIUM,
    CHROMIUM_ARGS,
    OUTPUT_DIR,
    WEB_DIR,
    running_platform,
)


@pytest.fixture(scope="module")
def web_dist() -> Path:
    """The UI built as `make up` builds it (a no-op when dist is current)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip(
            "Node.js/npm are not installed (apt-get install nodejs npm): cannot build the UI"
        )
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"scripts/build_web.sh failed:\n{result.stdout}{result.stderr}"
    dist = WEB_DIR / "dist"
    assert (dist / "index.html").is_file()
    return dist


@pytest.fixture(scope="module")
def base_url(web_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole platform started by its launcher (auth off, as `make up`); the gateway's
    address."""
    with running_platform(tmp_path_factory.mktemp("ui-platform"), web_dist) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed: run `apt-get install chromium`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as pw:
        # executable_path: Debian's Chromium; Playwright never downloads a browser here.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, base_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context on the gateway. JavaScript errors fail the test."""
    # A time zone other than the machine's (UTC): the UI must show times in the browser's zone.
    context = browser.new_context(
        base_url=base_url,
        viewport={"width": 1400, "height": 1000},
        timezone_id=BROWSER_TIME_ZONE,
        locale="en-US",
    )
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        if not pg.is_closed():
            pg.screenshot(path=str(OUTPUT_DIR / f"{request.node.name}-final.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
