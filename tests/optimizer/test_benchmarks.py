"""A few literature instances with a fixed seed and short limits: feasible, near the BKS.

Bounds are loose on purpose (CPU contention must not make them flaky): vehicles at most
BKS + 1, distance within 10 % of the BKS when the vehicle count matches.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from optimizer import check, solve
from optimizer.readers import read_instance

CASES = [
    ("lilim_100", "lilim", "lc101"),
    ("lilim_100", "lilim", "lr201"),
    ("solomon_100", "solomon", "R101"),
]


@pytest.mark.parametrize(("folder", "fmt", "name"), CASES)
def test_literature_instance(benchmarks: Path, folder: str, fmt: str, name: str) -> None:
    with (benchmarks / folder / "bks.csv").open() as fh:
        bks = {
            r["instance"]: (int(r["vehicles"]), float(r["distance"])) for r in csv.DictReader(fh)
        }
    inst = read_instance(benchmarks / folder / f"{name}.txt", fmt)
    plan = solve(inst.problem, time_limit=3.0, seed=0)
    report = check(inst.problem, plan, require_all=True)
    assert report.ok, report.violations[:5]
    bks_vehicles, bks_distance = bks[name]
    assert report.vehicles <= bks_vehicles + 1
    if report.vehicles == bks_vehicles:
        assert report.distance <= bks_distance * 1.10
    assert report.distance == pytest.approx(plan.distance, rel=1e-9)
