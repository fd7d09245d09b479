"""Broker and ingest fixtures on real Mosquitto, PostgreSQL and processes.

Reusable by every telematics test (T2's too):

- `mq_db` (session): a throw-away database `<FLEET_DB__NAME>_mq`, migrated and seeded like
  the main test DB (same terminal ids and passwords), because the ingest is another process
  and must see committed rows. Dropped at the end.
- `mqtt_broker` (session): the project's broker configuration (telematics.broker.mosquitto.Broker)
  rendered into a temporary directory, listening on a free port, passwords synced from
  `mq_db`. Stopped at the end.
- `mq_settings` (session): Settings pointing at `mq_db` and `mqtt_broker`.
- `ingest_procs` (per test): start `fleet ingest` processes (`.start(client_id=...)`),
  wait for readiness, kill -9 / terminate; all are killed at teardown. Each test gets its
  own shared-subscription group, so sessions left by earlier tests never take its pings.
- `publisher(terminal_id)`: a connected paho client publishing as that terminal with its
  own password; `.send(topic_suffix, payloads)` returns how many got PUBACK.
- `terminals(n)`: n terminal ids nobody else in the session used.
- `private_pg`: a PostgreSQL server of our own (initdb into a temporary directory, the
  machine's PostgreSQL + PostGIS binaries, a free port), migrated and seeded like `mq_db`,
  so a test can really restart the database server without disturbing anyone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fleet.config import Settings, get_settings
from fleet.db import create_database, drop_database
from telematics.broker.credentials import derived_secret
from telematics.broker.mosquitto import Broker
from tests.conftest import TEST_VEHICLES, _seed, prepare_database

TERMINAL_KEY = "test-terminal-key"
FLEET_BIN = str(Path(sys.executable).with_name("fleet"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminal_id(vehicle_id: int) -> str:
    return f"GX{vehicle_id:08d}"


@pytest.fixture(scope="session")
def mq_db() -> Iterator[Settings]:
    name = f"{get_settings().db.name}_mq"
    settings = prepare_database(name)
    yield settings
    asyncio.run(drop_database(name))


@pytest.fixture(scope="session")
def mqtt_broker(mq_db: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(
        var_dir=tmp_path_factory.mktemp("mosquitto"),
        host="127.0.0.1",
        port=free_port(),
        service_user="fleet-ingest",
        service_password=secrets.token_urlsafe(16),
    )
    asyncio.run(broker.sync(mq_db.db.dsn()))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mq_settings(mq_db: Settings, mqtt_broker: Broker) -> Settings:
    s = mq_db.model_copy(deep=True)
    s.mqtt.port = mqtt_broker.port
    s.mqtt.host = mqtt_broker.host
    s.mqtt.service_user = mqtt_broker.service_user
    s.mqtt.service_password = type(s.mqtt.service_password)(mqtt_broker.service_password)
    return s


_vehicle_ids = itertools.count(1)


@pytest.fixture(scope="session")
def terminals() -> Callable[[int], list[str]]:
    """Fresh terminal ids for a test (the seeded fleet has TEST_VEHICLES terminals)."""

    def take(n: int) -> list[str]:
        ids = [next(_vehicle_ids) for _ in range(n)]
        assert ids[-1] <= TEST_VEHICLES, "tests used up the seeded terminals"
        return [terminal_id(i) for i in ids]

    return take


class IngestProcess:
    """A real `fleet ingest` process; stderr is collected for readiness and diagnostics."""

    def __init__(self, settings: Settings, client_id: str, group: str, **env: str) -> None:
        self.client_id = client_id
        full_env = {
            **os.environ,
            "FLEET_DB__NAME": settings.db.name,
            "FLEET_DB__HOST": settings.db.host,
            "FLEET_DB__PORT": str(settings.db.port),
            "FLEET_MQTT__HOST": settings.mqtt.host,
            "FLEET_MQTT__PORT": str(settings.mqtt.port),
            "FLEET_MQTT__SERVICE_USER": settings.mqtt.service_user,
            "FLEET_MQTT__SERVICE_PASSWORD": settings.mqtt.service_password.get_secret_value(),
            "FLEET_INGEST__CLIENT_ID": client_id,
            "FLEET_INGEST__SHARE_GROUP": group,
            **env,
        }
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [FLEET_BIN, "ingest"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float = 30.0, *, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"ingest: no {text!r} within {timeout}s:\n{self.log()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_for("event='ingest.ready'", timeout)

    def log(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


class IngestProcs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = f"t{uuid.uuid4().hex[:8]}"
        self.procs: list[IngestProcess] = []

    def start(
        self, client_id: str | None = None, *, ready: bool = True, **env: str
    ) -> IngestProcess:
        cid = client_id or f"ingest-{self.group}-{len(self.procs) + 1}"
        p = IngestProcess(self.settings, cid, self.group, **env)
        self.procs.append(p)
        if ready:
            p.wait_ready()
        return p

    def close(self) -> None:
        for p in self.procs:
            p.kill9()


@pytest.fixture
def ingest_procs(mq_settings: Settings) -> Iterator[IngestProcs]:
    procs = IngestProcs(mq_settings)
    yield procs
    procs.close()


class Publisher:
    """Publishes as one terminal (its own credentials) and counts PUBACKs."""

    def __init__(self, settings: Settings, terminal: str, password: str | None = None) -> None:
        self.terminal = terminal
        self.prefix = f"{settings.mqtt.topic_prefix}/{terminal}"
        # A terminal logs in with its terminal id as client id (the broker's guard refuses
        # any other), so one Publisher per terminal at a time.
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=terminal)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.username_pw_set(terminal, password or derived_secret(TERMINAL_KEY, terminal))
        self.connack: Any = None
        self._connected = threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.connack = rc
            self._connected.set()

        self.client.on_connect = on_connect
        self.client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
        self.client.loop_start()
        self._connected.wait(10)

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def send(
        self, kind: str, payloads: list[Any], *, timeout: float = 30.0, topic: str | None = None
    ) -> int:
        """Publish QoS 1; returns how many the broker acknowledged (PUBACK) within timeout."""
        return sum(self.send_tracked(kind, payloads, timeout=timeout, topic=topic))

    def send_tracked(
        self, kind: str, payloads: list[Any], *, timeout: float = 30.0, topic: str | None = None
    ) -> list[bool]:
        """Publish QoS 1; per payload, whether the broker acknowledged it within timeout."""
        infos = []
        for p in payloads:
            body = p if isinstance(p, bytes) else orjson.dumps(p)
            infos.append(self.client.publish(topic or f"{self.prefix}/{kind}", body, qos=1))
        deadline = time.monotonic() + timeout
        for info in infos:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(remaining)
        return [_published(i) for i in infos]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _published(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return False


@pytest.fixture
def publisher(mq_settings: Settings) -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(terminal: str, password: str | None = None) -> Publisher:
        p = Publisher(mq_settings, terminal, password)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


async def wait_rows(
    dsn: str, sql: str, args: tuple[Any, ...], expected: int, timeout_s: float = 30.0
) -> int:
    """Poll `sql` (a count) until it reaches `expected` or the timeout; returns the last count."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout_s
        n = -1
        while time.monotonic() < deadline:
            n = int(await conn.fetchval(sql, *args))
            if n >= expected:
                return n
            await asyncio.sleep(0.2)
        return n
    finally:
        await conn.close()


def _pg_bin() -> Path:
    """The newest installed PostgreSQL whose PostGIS extension is installed too."""
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        major = bindir.parent.name
        if Path(f"/usr/share/postgresql/{major}/extension/postgis.control").exists():
            return bindir
    raise AssertionError("no PostgreSQL with PostGIS installed (run scripts/setup.sh --test)")


class PrivatePostgres:
    """A throw-away PostgreSQL cluster that a test may stop, crash and restart."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, str(self.bin / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def _ctl(self, action: str, *args: str) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", action, *args
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: a clean shutdown; `immediate`: a crash, the next start replays the WAL."""
        self._ctl("stop", "-m", mode)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg(mq_settings: Settings) -> Iterator[tuple[PrivatePostgres, Settings]]:
    """A private server with the test database, and mq_settings pointing at it."""
    from fleet.cli import migrate

    server = PrivatePostgres()
    try:
        s = mq_settings.model_copy(deep=True)
        s.db.host, s.db.port, s.db.name = "127.0.0.1", server.port, "fleet_restart"

        asyncio.run(create_database("fleet_restart", s.db))
        migrate(s.db)
        asyncio.run(_seed(s.db.owner().dsn()))
        yield server, s
    finally:
        server.destroy()


class ServeProcess:
    """A real `fleet serve` (API + live websocket) on a free port against `settings`' DB.

    It inherits this run's private Redis channel prefix (tests/conftest.py), so its live hub
    hears the test ingests and nothing else.
    """

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {
            **os.environ,
            "FLEET_DB__NAME": settings.db.name,
            "FLEET_DB__HOST": settings.db.host,
            "FLEET_DB__PORT": str(settings.db.port),
        }
        self.proc = subprocess.Popen(
            [FLEET_BIN, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("wb"),
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"fleet serve exited: {log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                break
            assert time.monotonic() < deadline, "fleet serve did not listen within 60 s"
            time.sleep(0.2)

    @property
    def live_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/live"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def serve_proc(
    mq_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    p = ServeProcess(mq_settings, tmp_path_factory.mktemp("serve") / "serve.log")
    yield p
    p.stop()
