"""Readers for the literature's instance formats (files may use CRLF line endings).

Li & Lim PDPTW: line 1 `K Q S`; then `id x y demand ready due service pickup delivery`,
task 0 the depot. Solomon VRPTW: header lines, then `CUST_NO x y demand ready due service`,
customer 0 the depot. Both become planar Problems with the literature's objective
(fewer vehicles first, then distance) and speed 1 (travel time = distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optimizer.model import XY, Problem, Request, StopKind, TimeWindow, Vehicle, Visit


@dataclass(frozen=True, slots=True)
class BenchmarkInstance:
    """A problem plus the file's node id of each stop (for printing routes)."""

    problem: Problem
    node_ids: dict[tuple[str, StopKind], int]

    @property
    def name(self) -> str:
        return self.problem.name


def _rows(path: str | Path) -> list[list[str]]:
    text = Path(path).read_text(encoding="utf-8")
    return [line.split() for line in text.splitlines() if line.strip()]


def _visit(x: str, y: str, ready: str, due: str, service: str) -> Visit:
    return Visit(
        point=XY(float(x), float(y)),
        window=TimeWindow(float(ready), float(due)),
        service=float(service),
    )


def _fleet(count: int, capacity: int, depot: XY, window: TimeWindow) -> tuple[Vehicle, ...]:
    return tuple(
        Vehicle(id=f"v{i + 1}", seats=capacity, depot=depot, available=window) for i in range(count)
    )


def read_lilim(path: str | Path) -> BenchmarkInstance:
    """Reads a Li & Lim PDPTW file."""
    rows = _rows(path)
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path}: not a Li & Lim file (no `K Q S` header)")
    count, capacity = int(rows[0][0]), int(rows[0][1])
    tasks: dict[int, list[str]] = {}
    for row in rows[1:]:
        if len(row) != 9:
            raise ValueError(f"{path}: task line with {len(row)} fields, expected 9: {row}")
        tasks[int(row[0])] = row
    if 0 not in tasks:
        raise ValueError(f"{path}: no depot (task 0)")
    d = tasks[0]
    depot = XY(float(d[1]), float(d[2]))
    horizon = TimeWindow(float(d[4]), float(d[5]))
    requests: list[Request] = []
    node_ids: dict[tuple[str, StopKind], int] = {}
    for tid, row in sorted(tasks.items()):
        if tid == 0 or int(row[7]) != 0:
            continue  # the depot, or a delivery (read with its pickup)
        did = int(row[8])
        drow = tasks.get(did)
        if drow is None or int(drow[7]) != tid:
            raise ValueError(f"{path}: pickup {tid} names delivery {did}, which does not match")
        rid = str(tid)
        requests.append(
            Request(
                id=rid,
                pickup=_visit(row[1], row[2], row[4], row[5], row[6]),
                dropoff=_visit(drow[1], drow[2], drow[4], drow[5], drow[6]),
                passengers=int(row[3]),
            )
        )
        node_ids[(rid, StopKind.PICKUP)] = tid
        node_ids[(rid, StopKind.DROPOFF)] = did
    problem = Problem(
        requests=tuple(requests),
        vehicles=_fleet(count, capacity, depot, horizon),
        horizon=horizon,
        name=Path(path).stem,
    )
    return BenchmarkInstance(problem=problem, node_ids=node_ids)


def read_solomon(path: str | Path) -> BenchmarkInstance:
    """Reads a Solomon VRPTW file."""
    rows = _rows(path)
    count = capacity = None
    customers: list[list[str]] = []
    for i, row in enumerate(rows):
        if row[0].upper() == "NUMBER" and i + 1 < len(rows):
            count, capacity = int(rows[i + 1][0]), int(rows[i + 1][1])
        if len(row) == 7 and all(_is_number(c) for c in row):
            customers.append(row)
    if count is None or capacity is None or not customers or int(customers[0][0]) != 0:
        raise ValueError(f"{path}: not a Solomon file")
    d = customers[0]
    depot = XY(float(d[1]), float(d[2]))
    horizon = TimeWindow(float(d[4]), float(d[5]))
    requests: list[Request] = []
    node_ids: dict[tuple[str, StopKind], int] = {}
    for row in customers[1:]:
        rid = row[0]
        requests.append(
            Request(
                id=rid,
                dropoff=_visit(row[1], row[2], row[4], row[5], row[6]),
                passengers=int(float(row[3])),
            )
        )
        node_ids[(rid, StopKind.DROPOFF)] = int(rid)
    problem = Problem(
        requests=tuple(requests),
        vehicles=_fleet(count, capacity, depot, horizon),
        horizon=horizon,
        name=Path(path).stem,
    )
    return BenchmarkInstance(problem=problem, node_ids=node_ids)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_instance(path: str | Path, fmt: str) -> BenchmarkInstance:
    """`fmt` is `lilim` or `solomon`."""
    if fmt == "lilim":
        return read_lilim(path)
    if fmt == "solomon":
        return read_solomon(path)
    raise ValueError(f"unknown format {fmt!r}: expected lilim or solomon")
