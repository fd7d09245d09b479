"""The `fleet` command, assembled at the top: the one place that knows every package.

Each package exports what it adds: ``GROUPS`` (command groups), ``COMMANDS`` and
``PROCESSES`` (what `fleet demo` runs next to the API, as (name, argv)); this module adds
`fleet serve`, `fleet demo` and `fleet solve` (the pure optimizer has no command of its own)
and lists them all, in the order `fleet --help` shows them.
The console script `fleet` (pyproject.toml) is :data:`app`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dispatch import cli as dispatch_cli
from fleet import cli as fleet_cli
from fleet.config import get_settings
from telematics import cli as telematics_cli


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    workers: Annotated[int, typer.Option(min=1, max=16)] = 1,
) -> None:
    """Run the HTTP API (and the consoles it serves)."""
    import uvicorn

    from fleet.logging import configure

    configure()  # uvicorn's access log included: no token, ticket or password in any line

    api = get_settings().api
    uvicorn.run(
        # an import string, not the app: uvicorn imports it in each of `workers` processes
        "web.main:app",
        host=host or api.host,
        port=port or api.port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
    )


def solve(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="instance file")],
    fmt: Annotated[str, typer.Option("--format", help="lilim or solomon")] = "lilim",
    time_limit: Annotated[float, typer.Option(min=0.1, max=3600)] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON result")] = False,
    seed_: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Solve a Li & Lim PDPTW or Solomon VRPTW instance with the optimizer."""
    if fmt not in ("lilim", "solomon"):
        raise typer.BadParameter("must be lilim or solomon", param_hint="--format")
    # The optimizer knows nothing of this command (it imports nothing of ours); loaded here,
    # when used, so `fleet --help` does not load OR-Tools.
    from optimizer.cli import solve_file

    raise typer.Exit(solve_file(str(file), fmt, time_limit, as_json, seed_))


# Processes `fleet demo` runs next to the API (`api`, i.e. `fleet serve`), as (name, argv).
DEMO_PROCESSES: tuple[tuple[str, list[str]], ...] = (
    *fleet_cli.PROCESSES,
    *telematics_cli.PROCESSES,
    *dispatch_cli.PROCESSES,
)


def demo(
    vehicles: Annotated[int, typer.Option(min=1, max=200_000)] = 26_638,
    simulated: Annotated[
        int, typer.Option(min=0, max=200_000, help="terminals to simulate")
    ] = 2_000,
) -> None:
    """Seed if needed, start the API and the live pipeline, print the console URL and logins."""
    settings = get_settings()
    dispatch_cli.seed(vehicles=vehicles, rng_seed=42, if_empty=True)
    fleet_bin = str(Path(sys.executable).with_name("fleet"))
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    env = {**os.environ, "FLEET_DEMO_SIMULATED": str(simulated)}
    for name, argv in [("api", ["serve"]), *DEMO_PROCESSES]:
        procs.append((name, subprocess.Popen([fleet_bin, *argv], env=env)))
    url = f"http://{settings.api.host}:{settings.api.port}"
    # A secret is never written to a log: the password is shown to a person at a terminal,
    # not to a file the output is redirected to.
    pw_shown = (
        settings.seed.demo_password.get_secret_value()
        if sys.stdout.isatty()
        else "(not shown: output is not a terminal)"
    )
    from dispatch.seed import DEMO_USERS

    lines = [
        "",
        "Fleet 公务用车管理平台 is running",
        f"  console:   {url}/",
        f"  API docs:  {url}/api/docs",
        f"  password for every demo login: {pw_shown}   (from .env, FLEET_SEED__DEMO_PASSWORD)",
        "  demo logins:",
        *[f"    {u:<22} {role:<10} {display}" for u, display, role, _ in DEMO_USERS],
        "  Ctrl-C stops everything.",
        "",
    ]
    time.sleep(2)
    typer.echo("\n".join(lines))
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop:
            for name, p in procs:
                if p.poll() is not None:
                    _echo(f"{name} exited with {p.returncode}; stopping the demo")
                    stop = True
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.terminate()
        for _, p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def build() -> typer.Typer:
    """The `fleet` Typer app: commands first, then command groups, each in package order."""
    root = typer.Typer(
        help="Fleet 公务用车管理平台: dispatch and telematics.", no_args_is_help=True
    )
    commands: tuple[tuple[str, Callable[..., Any]], ...] = (
        ("seed", dispatch_cli.seed),
        ("serve", serve),
        ("demo", demo),
        ("solve", solve),
        *telematics_cli.COMMANDS,
        *dispatch_cli.COMMANDS,
    )
    for name, command in commands:
        root.command(name)(command)
    for name, group in (*fleet_cli.GROUPS, *telematics_cli.GROUPS, *dispatch_cli.GROUPS):
        root.add_typer(group, name=name)
    return root


app = build()
