"""Run tests under a shifted clock (libfaketime), database server included.

    .venv/bin/python -m tests.shifted --at "2026-12-31 23:45" [pytest arguments…]

`--at` is a wall time in Asia/Shanghai. Every process of the run sees the same shifted clock:
pytest and whatever it starts (uvicorn, `fleet ingest`, Mosquitto, Chromium through
Playwright) inherit libfaketime through the environment, and a private PostgreSQL server
(initdb into a temporary directory, the machine's PostgreSQL + PostGIS binaries, a free
port) runs under the same offset, so `now()` in SQL and the clock in Python agree — the
machine's PostgreSQL, whose clock cannot be moved, is not used. The shift is an offset
(`FAKETIME="+Ns"`), not a frozen instant: time passes normally from there, and processes
started later still agree with those started earlier. Monotonic clocks are left alone
(timeouts and `asyncio` stay real; tests/faketime_site/sitecustomize.py works around
libfaketime's `time.sleep` in that mode).

Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fleet.config import ROOT

SHANGHAI = ZoneInfo("Asia/Shanghai")
SITE = Path(__file__).with_name("faketime_site")  # sitecustomize: time.sleep under libfaketime


def libfaketime() -> Path | None:
    """Debian's libfaketime (package faketime, installed by scripts/setup.sh --test)."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return found[0] if found else None


def offset_to(at: datetime) -> int:
    """Seconds to add to the real clock so that it reads `at` now."""
    return round((at - datetime.now(UTC)).total_seconds())


def parse_at(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=SHANGHAI)


def faketime_env(offset_s: int) -> dict[str, str]:
    """The environment that shifts a process's wall clock (and its children's) by offset_s.

    Set directly rather than through the `faketime` wrapper, whose shared-memory state dies
    with it (the PostgreSQL server outlives the pg_ctl that started it). Monotonic clocks stay
    real: lock and condition-variable timeouts (Python's threading, Chromium) compute their
    deadlines from them, and a shifted monotonic clock makes them wait for the whole offset.
    """
    lib = libfaketime()
    assert lib is not None, "libfaketime is not installed: run scripts/setup.sh --test"
    return {
        "LD_PRELOAD": str(lib),
        "FAKETIME": f"{offset_s:+d}s",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


class ShiftedPostgres:
    """A private PostgreSQL server whose clock is shifted by `offset_s` seconds."""

    def __init__(self, offset_s: int) -> None:
        from tests.telematics.conftest import PrivatePostgres

        shift = [f"{k}={v}" for k, v in faketime_env(offset_s).items()]

        class _Shifted(PrivatePostgres):
            def _pg(self, tool: str, *args: str) -> None:
                if tool != "pg_ctl":
                    return super()._pg(tool, *args)
                # a throw-away server: durability is not what is being tested
                fast = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                args = tuple(a + fast if a.startswith("-p ") else a for a in args)
                run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
                subprocess.run(
                    [*run_as, "env", *shift, str(self.bin / tool), *args],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=120,
                )

        self.server = _Shifted()
        self.port = self.server.port

    def close(self) -> None:
        self.server.destroy()


def run(at: datetime, pytest_args: list[str], *, quiet: bool = False) -> int:
    """pytest under the shifted clock with a shifted private database server."""
    if libfaketime() is None:
        print("libfaketime is not installed: run scripts/setup.sh --test", file=sys.stderr)
        return 4
    offset = offset_to(at)
    pg = ShiftedPostgres(offset)
    try:
        env = {
            **os.environ,
            "FLEET_DB__HOST": "127.0.0.1",
            "FLEET_DB__PORT": str(pg.port),
            "FLEET_SHIFTED_AT": at.isoformat(),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")])),
            **faketime_env(offset),
        }
        env.pop("PYTEST_CURRENT_TEST", None)
        cmd = [sys.executable, "-m", "pytest", *pytest_args]
        if not quiet:
            print(
                f"shifted clock: {at.isoformat()} (offset {offset:+d} s), "
                f"database on port {pg.port}",
                file=sys.stderr,
            )
        return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    finally:
        pg.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m tests.shifted",
        description="Run pytest under a shifted clock (libfaketime), database server included.",
    )
    ap.add_argument("--at", required=True, help='Shanghai wall time, e.g. "2026-12-31 23:45"')
    ns, rest = ap.parse_known_args()
    if rest[:1] == ["--"]:
        rest = rest[1:]
    sys.exit(run(parse_at(ns.at), rest or ["-q"]))


if __name__ == "__main__":
    main()
