"""The `fleet` command assembled at the top (web/cli.py): every command and group the packages
export is there, in `fleet --help`'s order, and every process `fleet demo` starts names a
command that exists."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from web.cli import DEMO_PROCESSES, app


def _root() -> TyperGroup:
    cmd = typer.main.get_command(app)
    assert isinstance(cmd, TyperGroup)
    return cmd


def _context(cmd: Any) -> Any:
    return typer.Context(cmd)


def _resolve(argv: list[str]) -> Any:
    cmd: Any = _root()
    for token in argv:
        if token.startswith("-"):
            break
        assert isinstance(cmd, TyperGroup), argv
        cmd = cmd.get_command(_context(cmd), token)
        if cmd is None:
            return None
    return cmd


def test_commands_and_groups_in_help_order() -> None:
    root = _root()
    assert list(root.list_commands(_context(root))) == [
        "seed",
        "serve",
        "demo",
        "solve",
        "ingest",
        "simulate",
        "jt808",
        "optimizer-worker",
        "dispatch-worker",
        "db",
        "audit",
        "broker",
        "derive",
        "positions",
        "approvals",
        "notifications",
    ]


def test_demo_processes_are_commands() -> None:
    assert [name for name, _ in DEMO_PROCESSES] == [
        "audit-anchor",
        "ingest",
        "simulator",
        "broker-monitor",
        "derive",
        "maintenance",
        "jt808",
        "simulator-jt808",
        "optimizer-worker",
        "dispatch-worker",
    ]
    for name, argv in DEMO_PROCESSES:
        cmd = _resolve(argv)
        assert cmd is not None and not isinstance(cmd, TyperGroup), (name, argv)
        # the options it passes exist on that command
        options = {o for p in cmd.params for o in getattr(p, "opts", ())}
        assert {a for a in argv if a.startswith("--")} <= options, (name, argv)
