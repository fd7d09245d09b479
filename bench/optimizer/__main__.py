"""`python -m bench.optimizer --set lilim_100 --time-limit 10`; figures in docs/."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from pathlib import Path


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.optimizer", description=__doc__)
    parser.add_argument(
        "--set",
        action="append",
        choices=["lilim_100", "solomon_100"],
        help="instance set (repeatable); default lilim_100 unless --city alone",
    )
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per instance")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instances", default="", help="comma-separated subset, e.g. lc101,lr104")
    parser.add_argument("--no-vroom", action="store_true", help="skip the VROOM comparison")
    parser.add_argument("--city", action="store_true", help="time the synthetic city day")
    parser.add_argument("--city-time-limit", type=float, default=50.0)
    parser.add_argument("--city-requests", type=int, default=2000)
    parser.add_argument("--city-vehicles", type=int, default=800)
    parser.add_argument("--out", default="", help="also write the printed table to this file")
    args = parser.parse_args(argv)

    from bench.optimizer.literature import run_set

    lines = [f"# {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {machine()}"]
    print(lines[0], flush=True)
    sets = args.set or ([] if args.city else ["lilim_100"])
    only = [s for s in args.instances.split(",") if s] or None
    for set_name in sets:
        run_set(
            set_name,
            time_limit=args.time_limit,
            seed=args.seed,
            only=only,
            with_vroom=not args.no_vroom,
            out=lines,
        )
    if args.city:
        from bench.optimizer.city import run_city

        lines += run_city(
            requests=args.city_requests,
            vehicles=args.city_vehicles,
            time_limit=args.city_time_limit,
            seed=args.seed,
        )
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
