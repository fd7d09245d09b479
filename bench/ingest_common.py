"""Shared set-up of the ingest benchmarks: throw-away database, private broker, publishers.

The broker is the project's broker configuration (telematics.broker.mosquitto.Broker, same template,
same limits) started on a free port with its own runtime directory, so a benchmark never
disturbs a running demo on 1884; the database is a throw-away one, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from fleet.config import Settings, get_settings
from fleet.db import drop_database, recreate_database
from telematics.broker.credentials import derived_secret
from telematics.broker.mosquitto import Broker

TERMINAL_KEY = "bench-terminal-key"
FLEET_BIN = str(Path(sys.executable).with_name("fleet"))


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(dsn: str, vehicles: int) -> None:
    from dispatch.seed import SeedConfig, seed

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await seed(conn, SeedConfig(vehicles=vehicles, seed=11, terminal_key=TERMINAL_KEY))
    finally:
        await conn.close()


@dataclass
class Rig:
    settings: Settings
    broker: Broker


@contextlib.contextmanager
def rig(db_name: str, vehicles: int = 1_000) -> Iterator[Rig]:
    """Throw-away seeded database + private broker synced from it; both removed after."""
    from fleet.cli import migrate

    # A bus of its own: every process the bench starts inherits this, so a demo running on
    # the same Redis neither hears the bench's vehicles nor feeds the bench its own.
    os.environ["FLEET_REDIS__CHANNEL_PREFIX"] = f"fleet-bench-{secrets.token_hex(4)}"
    get_settings.cache_clear()
    settings = get_settings().model_copy(deep=True)
    settings.db.name = db_name
    settings.seed.terminal_key = SecretStr(TERMINAL_KEY)
    asyncio.run(recreate_database(db_name, settings.db))
    tmp = tempfile.TemporaryDirectory(prefix="fleet-bench-mq-")
    broker = Broker(
        var_dir=Path(tmp.name),
        host="127.0.0.1",
        port=free_port(),
        service_user="fleet-ingest",
        service_password=secrets.token_urlsafe(16),
    )
    try:
        migrate(settings.db)
        asyncio.run(_seed(settings.db.owner().dsn(), vehicles))
        asyncio.run(broker.sync(settings.db.owner().dsn()))
        broker.start()
        settings.mqtt.host, settings.mqtt.port = broker.host, broker.port
        settings.mqtt.service_user = broker.service_user
        settings.mqtt.service_password = SecretStr(broker.service_password)
        yield Rig(settings, broker)
    finally:
        with contextlib.suppress(Exception):
            broker.stop()
        tmp.cleanup()
        asyncio.run(drop_database(db_name, settings.db))


def terminal_ids(n: int) -> list[str]:
    return [f"GX{i:08d}" for i in range(1, n + 1)]


class Publishers:
    """One paho connection per terminal (its own credentials); QoS 1; counts PUBACKs."""

    def __init__(self, settings: Settings, tids: list[str]) -> None:
        self.prefix = settings.mqtt.topic_prefix
        self.clients: dict[str, mqtt.Client] = {}
        self.infos: list[tuple[str, int, mqtt.MQTTMessageInfo]] = []
        for tid in tids:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=tid)  # the broker demands it
            c.username_pw_set(tid, derived_secret(TERMINAL_KEY, tid))
            c.max_inflight_messages_set(500)
            c.max_queued_messages_set(0)
            c.connect(settings.mqtt.host, settings.mqtt.port, keepalive=60)
            c.loop_start()
            self.clients[tid] = c
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
            c.is_connected() for c in self.clients.values()
        ):
            time.sleep(0.05)

    def publish(self, tid: str, seq: int, payload: bytes) -> None:
        info = self.clients[tid].publish(f"{self.prefix}/{tid}/position", payload, qos=1)
        self.infos.append((tid, seq, info))

    def wait_acked(self, timeout_s: float = 120) -> int:
        deadline = time.monotonic() + timeout_s
        for _, _, info in self.infos:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(left)
        return sum(1 for _, _, i in self.infos if _ok(i))

    def close(self) -> None:
        for c in self.clients.values():
            c.disconnect()
            c.loop_stop()


def _ok(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


class IngestProc:
    """`fleet ingest` as a subprocess against the rig; stderr kept for its totals."""

    def __init__(self, settings: Settings, client_id: str, group: str) -> None:
        env = {
            **os.environ,
            "FLEET_DB__NAME": settings.db.name,
            "FLEET_MQTT__HOST": settings.mqtt.host,
            "FLEET_MQTT__PORT": str(settings.mqtt.port),
            "FLEET_MQTT__SERVICE_USER": settings.mqtt.service_user,
            "FLEET_MQTT__SERVICE_PASSWORD": settings.mqtt.service_password.get_secret_value(),
            "FLEET_INGEST__CLIENT_ID": client_id,
            "FLEET_INGEST__SHARE_GROUP": group,
        }
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FLEET_BIN, "ingest"], env=env, stderr=subprocess.PIPE, text=True
        )
        # (wall clock, CPU seconds of the process) every 20 ms: CPU spent in a time window.
        self.cpu: list[tuple[float, float]] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample_cpu, daemon=True).start()

    def _sample_cpu(self) -> None:
        stat = Path(f"/proc/{self.proc.pid}/stat")
        tick = os.sysconf("SC_CLK_TCK")
        while self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                self.cpu.append((time.time(), (int(fields[11]) + int(fields[12])) / tick))
            time.sleep(0.02)

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds the ingest used between two wall-clock instants (±20 ms)."""

        def at(t: float) -> float:
            return next((c for w, c in reversed(self.cpu) if w <= t), 0.0)

        return at(t1) - at(t0)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                raise RuntimeError("ingest exited:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.02)
        raise TimeoutError(f"ingest: no {text!r}")

    def stop(self) -> dict[str, int]:
        """SIGTERM, wait, and return the totals it logged on the way out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for line in reversed(self.lines):
            if "ingest.stopped" in line:
                return {k: int(v) for k, v in re.findall(r"(\w[\w.]*)=(\d+)\b", line)}
        return {}


def subscribe_session(settings: Settings, client_id: str, topics: list[str]) -> None:
    """Create a persistent session with these subscriptions, then leave (messages queue)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    done = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    m = settings.mqtt
    c.username_pw_set(m.service_user, m.service_password.get_secret_value())
    c.on_subscribe = lambda *_a: done.set()
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect(m.host, m.port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe([(t, 1) for t in topics])
    if not done.wait(10):
        raise RuntimeError("no SUBACK")
    c.disconnect()
    c.loop_stop()


def table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    cols = list(zip(header, *rows, strict=False))
    widths = [max(len(str(v)) for v in col) for col in cols]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(str(v) for v in r)) for r in rows]
    return "\n".join(lines)
