"""Shared helpers for optimizer tests: tiny planar instances and the benchmark folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def benchmarks_dir() -> Path:
    env = os.environ.get("FLEET_BENCHMARKS_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "benchmarks"


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    path = benchmarks_dir()
    if not (path / "lilim_100").is_dir():
        pytest.skip(f"benchmark instances not found at {path} (set FLEET_BENCHMARKS_DIR)")
    return path
