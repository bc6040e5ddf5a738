"""Chaos suite fixtures: real processes, the fault proxy, one JWT platform per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests import chaos_support by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).parent))

from chaos_support import JwtPlatform, start_jwt_platform

from tradeplane.testing.processes import service_processes


@pytest.fixture(scope="session")
def jwt_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtPlatform]:
    with service_processes(tmp_path_factory.mktemp("jwt-platform")) as factory:
        yield start_jwt_platform(factory)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seed",
        type=int,
        default=None,
        help="seed for the chaos suite's random choices (fuzzing, fault timing); printed",
    )


@pytest.fixture(scope="session")
def chaos_seed(request: pytest.FixtureRequest) -> int | None:
    """The --seed given, or None: each test then uses its fixed, repeatable default."""
    seed: int | None = request.config.getoption("--seed")
    return seed


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("--seed")
    return f"chaos seed: {seed if seed is not None else 'fixed defaults (pass --seed=N)'}"
