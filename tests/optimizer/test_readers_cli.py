"""Readers (CRLF files), the CLI function and `python -m optimizer`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.checker import check
from optimizer.cli import solve_file
from optimizer.model import StopKind
from optimizer.readers import read_instance, read_lilim, read_solomon

LILIM_TINY = (
    "3\t10\t1\r\n"
    "0\t0\t0\t0\t0\t500\t0\t0\t0\r\n"
    "1\t10\t0\t5\t0\t100\t2\t0\t2\r\n"
    "2\t20\t0\t-5\t0\t200\t2\t1\t0\r\n"
    "3\t0\t10\t4\t0\t100\t2\t0\t4\r\n"
    "4\t0\t20\t-4\t0\t200\t2\t3\t0\r\n"
)
SOLOMON_TINY = (
    "TINY\r\n\r\nVEHICLE\r\nNUMBER     CAPACITY\r\n  2         10\r\n\r\nCUSTOMER\r\n"
    "CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME\r\n \r\n"
    "    0      0         0          0          0        500          0\r\n"
    "    1      10        0          6          0        100         5\r\n"
    "    2      0         10         6          0        100         5\r\n"
)


@pytest.fixture
def lilim_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_bytes(LILIM_TINY.encode())
    return path


def test_read_lilim_tiny(lilim_file: Path) -> None:
    inst = read_lilim(lilim_file)
    p = inst.problem
    assert len(p.vehicles) == 3 and p.vehicles[0].seats == 10
    assert [r.id for r in p.requests] == ["1", "3"]
    assert inst.node_ids[("1", StopKind.DROPOFF)] == 2
    assert p.requests[0].pickup is not None and p.requests[0].pickup.service == 2
    assert p.horizon.end == 500


def test_read_solomon_tiny(tmp_path: Path) -> None:
    path = tmp_path / "T1.txt"
    path.write_bytes(SOLOMON_TINY.encode())
    inst = read_solomon(path)
    assert [r.passengers for r in inst.problem.requests] == [6, 6]
    assert all(r.pickup is None for r in inst.problem.requests)
    assert len(inst.problem.vehicles) == 2


def test_read_real_files(benchmarks: Path) -> None:
    lc = read_instance(benchmarks / "lilim_100" / "lc101.txt", "lilim")
    assert len(lc.problem.requests) == 53 and len(lc.problem.vehicles) == 25
    c = read_instance(benchmarks / "solomon_100" / "C101.txt", "solomon")
    assert len(c.problem.requests) == 100 and c.problem.vehicles[0].seats == 200
    with pytest.raises(ValueError, match="unknown format"):
        read_instance(benchmarks / "solomon_100" / "C101.txt", "tsplib")


def test_bad_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("hello world\n")
    with pytest.raises(ValueError):
        read_lilim(path)
    assert solve_file(str(path), "solomon", 0.2, True) == 2


def test_solve_file_json(lilim_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = solve_file(str(lilim_file), "lilim", 0.5, True)
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vehicles"] == 1  # 10 seats carry both rides
    assert sorted(n for r in out["routes"] for n in r) == [1, 2, 3, 4]
    for r in out["routes"]:
        assert r.index(1) < r.index(2) and r.index(3) < r.index(4)
    inst = read_lilim(lilim_file)
    assert isinstance(out["distance"], float)
    assert out["distance"] == pytest.approx(check(inst.problem, _plan_from(inst, out)).distance)


def _plan_from(inst: object, out: dict[str, object]) -> object:
    from optimizer.model import Plan, PlannedStop, Route
    from optimizer.readers import BenchmarkInstance

    assert isinstance(inst, BenchmarkInstance)
    by_node = {node: key for key, node in inst.node_ids.items()}
    routes = tuple(
        Route(
            f"v{i + 1}",
            tuple(PlannedStop(*by_node[n], 0.0, 0.0, 0.0, 0) for n in r),
            0.0,
            0.0,
            0.0,
            0.0,
        )
        for i, r in enumerate(out["routes"])  # type: ignore[arg-type]
    )
    return Plan(routes)


def test_module_entry_point(lilim_file: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optimizer",
            str(lilim_file),
            "--format",
            "lilim",
            "--time-limit",
            "0.3",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["vehicles"] == 1
