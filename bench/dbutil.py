"""What the benchmarks share besides their databases (made with `fleet.db`): a percentile."""

from __future__ import annotations


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile of `xs` (q in 0..1)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]
