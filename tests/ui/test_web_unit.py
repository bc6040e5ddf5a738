"""The UI's own unit tests (`npm test`: node:test on the compiled TypeScript), e.g. how the live
view merges WebSocket events, snapshots and polled pages without duplicates."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ui_support import WEB_DIR


def test_npm_unit_tests_pass(web_dist: Path) -> None:  # web_dist: node_modules installed
    result = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=WEB_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout, result.stdout
