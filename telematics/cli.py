"""Telematics subcommands: `fleet broker ...`, `fleet ingest`, `fleet simulate`; and what the
package exports to the `fleet` command and demo (COMMANDS, GROUPS, PROCESSES)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Annotated

import typer

from fleet.config import get_settings
from telematics.derive_cli import derive_app
from telematics.jt808 import cli as jt808_cli
from telematics.maintenance_cli import positions_app

broker_app = typer.Typer(
    help="The project's own Mosquitto broker (127.0.0.1:1884 by default, files in var/mosquitto).",
    no_args_is_help=True,
)


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


@broker_app.command("start")
def broker_start() -> None:
    """Render the config, sync passwords from the DB (if seeded) and start the broker.

    Idempotent: if the broker is already running this only re-syncs and reloads it.
    """
    from telematics.broker.mosquitto import Broker, BrokerError

    settings = get_settings()
    b = Broker.from_settings(settings)
    try:
        n = asyncio.run(b.sync(settings.db.dsn()))
        if b.stale():
            # e.g. the guard plugin or the limits changed: a SIGHUP does not apply them.
            _echo("broker: running with an older configuration; restarting it (gated)")
            asyncio.run(b.restart(settings.db.dsn()))
        started = b.start()
    except BrokerError as exc:
        _echo(f"broker: {exc}")
        raise typer.Exit(1) from exc
    state = "started" if started else "already running"
    _echo(f"broker {state} on {b.host}:{b.port} (pid {b.pid()}), {n} terminals provisioned")


@broker_app.command("restart")
def broker_restart(
    gate_s: Annotated[
        float, typer.Option(min=0, max=600, help="max seconds to wait for an ingest")
    ] = 30,
) -> None:
    """Restart the broker; admit terminals only once an ingest has resubscribed.

    Mosquitto 2.0 does not persist shared subscriptions: pings accepted before the ingest
    resubscribes would match nobody and be dropped. Terminals are refused (and keep their
    pings) until a probe shows an ingest subscribed, or --gate-s passes.
    """
    from telematics.broker.mosquitto import Broker, BrokerError

    settings = get_settings()
    b = Broker.from_settings(settings)
    try:
        seen = asyncio.run(b.restart(settings.db.dsn(), gate_s=gate_s))
    except BrokerError as exc:
        _echo(f"broker: {exc}")
        raise typer.Exit(1) from exc
    _echo(f"broker restarted (pid {b.pid()}); ingest subscribed before admitting terminals: {seen}")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the broker (SIGTERM; it writes its persistence file first)."""
    from telematics.broker.mosquitto import Broker

    b = Broker.from_settings(get_settings())
    _echo("broker stopped" if b.stop() else "broker was not running")


@broker_app.command("status")
def broker_status() -> None:
    """Show whether the broker runs and listens; exit 1 if it does not."""
    from telematics.broker.mosquitto import Broker

    b = Broker.from_settings(get_settings())
    s = b.status()
    ingest = b.ingest_subscribed(timeout_s=3) if s.listening else False
    _echo(
        f"broker: {'running' if s.running else 'stopped'} pid={s.pid} "
        f"listening={s.listening} {s.host}:{s.port} dir={s.var_dir} ingest_subscribed={ingest}"
    )
    raise typer.Exit(0 if s.running and s.listening else 1)


@broker_app.command("sync")
def broker_sync() -> None:
    """Rewrite the broker's password file from the terminals table and reload it (SIGHUP).

    Run after seeding and whenever terminals are added, deactivated or re-keyed.
    """
    from telematics.broker.mosquitto import Broker, BrokerError

    settings = get_settings()
    b = Broker.from_settings(settings)
    try:
        n = asyncio.run(b.sync(settings.db.dsn()))
    except BrokerError as exc:
        _echo(f"broker: {exc}")
        raise typer.Exit(1) from exc
    _echo(f"broker password file: {n} terminals + service user; reloaded={b.pid() is not None}")


@broker_app.command("monitor")
def broker_monitor(
    log: Annotated[
        str | None, typer.Option(help="broker log to follow (default: var/mosquitto/mosquitto.log)")
    ] = None,
    once: Annotated[bool, typer.Option(help="read what is new once and exit")] = False,
) -> None:
    """Count what the broker refuses (oversize uploads, wrong client ids, subscriptions...)
    per terminal and reason from its log; alert on a terminal that keeps failing
    (thresholds: FLEET_BROKER_MONITOR__*). `fleet demo` runs it."""
    import signal
    from pathlib import Path

    from fleet.logging import configure
    from telematics.broker.mosquitto import Broker
    from telematics.broker.refusals import MonitorSettings, run_forever

    configure("INFO")
    settings = get_settings()
    path = Path(log).resolve() if log else Broker.from_settings(settings).log_path.resolve()
    cfg = MonitorSettings()

    async def main() -> None:
        stop = asyncio.Event()
        if once:
            stop.set()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_forever(settings, path, cfg, stop, at_least_once=True)

    asyncio.run(main())


@broker_app.command("refusals")
def broker_refusals(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """What the broker refused, per client id (a terminal's is its id) and reason."""
    import asyncpg
    import orjson

    from telematics.broker.refusals import REASONS, summary

    async def load() -> list[dict[str, object]]:
        conn = await asyncpg.connect(get_settings().db.dsn())
        try:
            return await summary(conn, limit)
        finally:
            await conn.close()

    rows = asyncio.run(load())
    if as_json:
        typer.echo(orjson.dumps(rows, default=str).decode())
        return
    if not rows:
        _echo("no refusals recorded (is `fleet broker monitor` running?)")
    for r in rows:
        typer.echo(
            f"{r['client_id']:<24} {r['reason']:<18} {r['count']:>8}  last {r['last_at']}"
            f"  ({REASONS.get(str(r['reason']), '')})"
        )


def ingest(
    client_id: Annotated[
        str | None,
        typer.Option(help="MQTT client id of this instance (stable across restarts)"),
    ] = None,
    batch_max: Annotated[
        int | None,
        typer.Option(min=1, max=50_000, help="pings per batch (default 2000, env FLEET_INGEST__*)"),
    ] = None,
    batch_wait_ms: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="max wait after a batch's first ping (default 200)"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG logs every batch")] = "INFO",
) -> None:
    """Run the MQTT ingest: validate, store (one transaction per batch), ack, publish.

    Several instances share the load (MQTT shared subscription); give each its own
    --client-id (e.g. fleet-ingest-2) and keep it across restarts (persistent session).
    """
    from fleet.logging import configure
    from telematics.ingest.mqtt import run
    from telematics.ingest.schemas import IngestSettings

    configure(log_level.upper())
    cfg = IngestSettings()
    if batch_max is not None:
        cfg.batch_max = batch_max
    if batch_wait_ms is not None:
        cfg.batch_wait_ms = batch_wait_ms
    run(get_settings(), cfg, client_id=client_id)


def simulate(
    vehicles: Annotated[
        int | None,
        typer.Option(
            min=1, max=200_000, help="terminals to simulate (default: $FLEET_DEMO_SIMULATED or 200)"
        ),
    ] = None,
    interval: Annotated[float, typer.Option(min=0.2, max=3600, help="seconds between pings")] = 10,
    gap: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="share of terminals that go through a coverage gap, then upload the buffered "
            "pings as one array on .../positions",
        ),
    ] = 0.05,
    bad_share: Annotated[
        float, typer.Option(min=0, max=1, help="share of malformed / out-of-range pings")
    ] = 0.0,
    duration: Annotated[
        float, typer.Option(min=0, help="stop after this many seconds (0 = until Ctrl-C)")
    ] = 0,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
    connect_rate: Annotated[
        int, typer.Option(min=1, max=10_000, help="new MQTT connections per second")
    ] = 200,
    sync_broker: Annotated[
        bool,
        typer.Option(
            help="first run `fleet broker start` (sync passwords, start if down); "
            "`fleet demo` uses it because it seeds after setup started the broker"
        ),
    ] = False,
    protocol: Annotated[
        str,
        typer.Option(help="mqtt-json, or jt808: terminals over TCP to `fleet jt808`"),
    ] = "mqtt-json",
    provision: Annotated[
        bool,
        typer.Option(help="jt808, demo data: convert --vehicles demo terminals to JT/T 808 first"),
    ] = False,
    alarm_share: Annotated[
        float,
        typer.Option(min=0, max=1, help="jt808: chance per report that an alarm (SOS...) starts"),
    ] = 0.0,
) -> None:
    """Drive simulated terminals on road-like routes between real places of the region.

    Each terminal connects with its own credentials (derived from FLEET_SEED__TERMINAL_KEY)
    and publishes QoS 1 pings to fleet/v1/terminals/<id>/position; with --protocol jt808 it
    speaks JT/T 808 to the gateway instead (blind-area backlogs as 0x0704 on reconnect).
    """
    from fleet.logging import configure
    from telematics.simulator import SimConfig, run_simulation

    configure("INFO")
    if protocol not in ("mqtt-json", "jt808"):
        raise typer.BadParameter("mqtt-json or jt808", param_hint="--protocol")
    if sync_broker and protocol == "mqtt-json":
        broker_start()
    n = vehicles or int(os.environ.get("FLEET_DEMO_SIMULATED", "200"))
    cfg = SimConfig(
        vehicles=n,
        interval_s=interval,
        gap_share=gap,
        bad_share=bad_share,
        duration_s=duration,
        seed=seed,
        connect_rate=connect_rate,
    )
    if protocol == "jt808":
        from telematics.jt808.simulate import run_simulation as run_jt808

        asyncio.run(run_jt808(get_settings(), cfg, provision=provision, alarm_share=alarm_share))
        return
    asyncio.run(run_simulation(get_settings(), cfg))


# What the package adds to the `fleet` command (assembled in web/cli.py): commands, command
# groups, and the processes `fleet demo` runs next to the API, as (name, argv).
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("ingest", ingest),
    ("simulate", simulate),
    ("jt808", jt808_cli.jt808),  # the JT/T 808 gateway
)
GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("broker", broker_app),
    ("derive", derive_app),  # the derive worker
    ("positions", positions_app),
)
PROCESSES: tuple[tuple[str, list[str]], ...] = (
    ("ingest", ["ingest"]),
    ("simulator", ["simulate", "--sync-broker"]),
    ("broker-monitor", ["broker", "monitor"]),
    ("derive", ["derive", "run"]),
    ("maintenance", ["positions", "maintain"]),
    *jt808_cli.PROCESSES,
)
