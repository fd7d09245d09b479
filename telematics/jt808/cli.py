"""`fleet jt808` and the gateway's place in `fleet demo` — in one small place."""

from __future__ import annotations

from typing import Annotated

import typer


def jt808(
    host: Annotated[str | None, typer.Option(help="listen address (FLEET_JT808__HOST)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="TCP port (FLEET_JT808__PORT, 6808)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="this gateway's name when several run (FLEET_JT808__NAME)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG logs every frame error")] = "INFO",
) -> None:
    """Run the JT/T 808 gateway: terminals over TCP (2013 and 2019) into the ingest pipeline.

    Registration, authentication, heartbeats, locations (0x0200, 0x0704) answered after
    commit, console texts (0x8300) and position queries (0x8201). See docs/jt808.md.
    """
    from fleet.config import get_settings
    from fleet.logging import configure
    from telematics.ingest.schemas import IngestSettings
    from telematics.jt808.config import Jt808Settings
    from telematics.jt808.server import run

    configure(log_level.upper())
    cfg = Jt808Settings()
    if host is not None:
        cfg.host = host
    if port is not None:
        cfg.port = port
    if name is not None:
        cfg.name = name
    run(get_settings(), cfg, IngestSettings())


# `fleet demo`: the gateway and some simulated JT/T 808 terminals (converted from the demo
# fleet on first run: telematics/jt808/simulate.py `provision_demo`).
PROCESSES: tuple[tuple[str, list[str]], ...] = (
    ("jt808", ["jt808"]),
    (
        "simulator-jt808",
        [
            "simulate",
            "--protocol",
            "jt808",
            "--vehicles",
            "100",
            "--provision",
            "--alarm-share",
            "0.0005",
        ],
    ),
)
