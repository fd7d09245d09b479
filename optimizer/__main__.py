"""`python -m optimizer FILE --format lilim|solomon --time-limit S [--json]`."""

from __future__ import annotations

import argparse

from optimizer.cli import solve_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimizer", description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--format", choices=["lilim", "solomon"], required=True)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return solve_file(args.file, args.format, args.time_limit, args.json, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
