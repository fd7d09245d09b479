"""Browser-test fixtures: a throw-away seeded database, a real uvicorn server on a free port,
and Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from fleet.config import ROOT, Settings, get_settings
from fleet.db import drop_database
from tests.conftest import DEMO_PASSWORD, prepare_database
from tests.web import fleetdata

T = TypeVar("T")
ARTIFACTS = ROOT / "test-artifacts" / "web"
DIST = ROOT / "web" / "frontend" / "dist" / "index.html"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # WebGL for MapLibre without a GPU: SwiftShader, which recent Chromium only enables on request.
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
]


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run a coroutine to completion in a worker thread: Playwright's sync API keeps an event
    loop running in the test thread, so asyncio.run cannot be used there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_chromium(pw: Playwright) -> Browser:
    env: dict[str, str | float | bool] | None = None
    if os.environ.get("FAKETIME"):
        # A shifted-clock run (tests/shifted.py): Chromium keeps libfaketime, but with its
        # monotonic clock shifted too — with real monotonic and shifted wall clocks it never
        # finishes loading a page.
        env = {k: v for k, v in os.environ.items() if k != "FAKETIME_DONT_FAKE_MONOTONIC"}
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000, env=env)


def start_server(settings: Settings, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLEET_DB__NAME": settings.db.name, "FLEET_WEB__DEFAULT_TILES": "offline"}
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "web.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("uvicorn did not answer within 40 s")


async def _seed_positions(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        cars = await fleetdata.load_cars(conn)
        await fleetdata.write_latest(conn, cars, datetime.now(UTC))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def web_settings() -> Iterator[Settings]:
    if not DIST.is_file():
        pytest.fail("web/frontend/dist is not built: run scripts/setup.sh (npm run build)")
    name = f"{get_settings().db.name}_browser"
    with ThreadPoolExecutor(max_workers=1) as pool:
        settings = pool.submit(prepare_database, name).result(timeout=180)
    run_async(_seed_positions(settings))
    yield settings
    run_async(drop_database(name))


@pytest.fixture(scope="session")
def base_url(web_settings: Settings) -> Iterator[str]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = start_server(web_settings, port, ARTIFACTS / "server.log")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser(base_url: str) -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()


@pytest.fixture(scope="session")
def password() -> str:
    return DEMO_PASSWORD
