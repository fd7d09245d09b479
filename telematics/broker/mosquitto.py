"""The project's own Mosquitto broker: config rendering, password/ACL sync, start/stop.

The broker is the system `mosquitto` binary run with a configuration rendered from
`deploy/mosquitto/*.template` into a runtime directory (`var/mosquitto` by default, tests
use a temporary one). Terminal credentials come from the terminals table: `secret_hash` is
already in Mosquitto's `$7$` format, so the password file is written without any plaintext.

Mosquitto 2.0's acl_file cannot refuse a SUBSCRIBE (it only filters deliveries), so a
terminal could join the ingest's shared subscription and make the broker drop pings it had
acknowledged. The broker therefore loads `fleet_guard` (deploy/mosquitto/fleet_guard.c,
compiled here into var_dir): terminals may subscribe to nothing and must log in with their
terminal id as client id. See docs/telematics-ingest.md.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import signal
import socket
import string
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from fleet.config import ROOT, Settings
from fleet.logging import get_logger
from telematics.broker.credentials import hash_secret
from telematics.ingest.schemas import MAX_ARRAY_PINGS, MAX_MESSAGE_BYTES

log = get_logger("telematics.broker")

TEMPLATES = ROOT / "deploy" / "mosquitto"
MOSQUITTO = "mosquitto"
GUARD_SOURCE = TEMPLATES / "fleet_guard.c"

# Sizing (see the comments in the config template).
MAX_INFLIGHT = 20_000
MAX_QUEUED = 5_000_000
MAX_QUEUED_BYTES = 1 << 30
# Largest MQTT packet the broker takes: twice the contract's largest `/positions` message.
MAX_PACKET_SIZE = 1 << 20
assert MAX_PACKET_SIZE >= 2 * MAX_MESSAGE_BYTES, "keep the broker limit above the contract"


class BrokerError(RuntimeError):
    """The broker could not be configured or started."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    listening: bool
    host: str
    port: int
    var_dir: Path


@dataclass
class Broker:
    """One broker instance: where its files live and where it listens."""

    var_dir: Path
    host: str
    port: int
    service_user: str
    service_password: str
    topic_prefix: str = "fleet/v1/terminals"

    @classmethod
    def from_settings(cls, settings: Settings, var_dir: Path | None = None) -> Broker:
        m = settings.mqtt
        return cls(
            var_dir=var_dir or settings.var_dir / "mosquitto",
            host=m.host,
            port=m.port,
            service_user=m.service_user,
            service_password=m.service_password.get_secret_value(),
            topic_prefix=m.topic_prefix.rstrip("/"),
        )

    # ---- files --------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        return self.var_dir / "mosquitto.conf"

    @property
    def passwd_path(self) -> Path:
        return self.var_dir / "passwd"

    @property
    def pid_path(self) -> Path:
        return self.var_dir / "mosquitto.pid"

    @property
    def log_path(self) -> Path:
        return self.var_dir / "mosquitto.log"

    @property
    def guard_path(self) -> Path:
        return self.var_dir / "fleet_guard.so"

    def _render(self, template: str) -> str:
        text = (TEMPLATES / template).read_text()
        return string.Template(text).substitute(
            var_dir=str(self.var_dir.resolve()),
            guard_plugin=str(self.guard_path.resolve()),
            run_user=getpass.getuser(),
            host=self.host,
            port=self.port,
            max_inflight=MAX_INFLIGHT,
            max_queued=MAX_QUEUED,
            max_queued_bytes=MAX_QUEUED_BYTES,
            max_packet_size=MAX_PACKET_SIZE,
            max_array_pings=MAX_ARRAY_PINGS,
            max_message_bytes=MAX_MESSAGE_BYTES,
            service_user=self.service_user,
            topic_prefix=self.topic_prefix,
        )

    def render(self) -> None:
        """Write mosquitto.conf and acl, build the guard plugin, into var_dir (idempotent)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.build_guard()
        _atomic_write(self.conf_path, self._render("mosquitto.conf.template"))
        _atomic_write(self.var_dir / "acl", self._render("acl.template"))

    def build_guard(self) -> bool:
        """Compile fleet_guard.c into var_dir unless the built one is of the same source.

        The new library replaces the old by rename, so a running broker keeps the copy it
        loaded (plugins are loaded at start only). Returns whether it compiled.
        """
        source = GUARD_SOURCE.read_bytes()
        digest = hashlib.sha256(source).hexdigest()
        stamp = self.guard_path.with_name(self.guard_path.name + ".sha256")
        if self.guard_path.exists() and stamp.exists() and stamp.read_text().strip() == digest:
            return False
        tmp = self.guard_path.with_name(f"{self.guard_path.name}.{os.getpid()}.tmp")
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(tmp)]
        try:
            proc = subprocess.run(
                [*cmd, str(GUARD_SOURCE)], capture_output=True, text=True, timeout=120
            )
        except OSError as exc:
            raise BrokerError(f"cannot compile the broker guard plugin ({cc}): {exc}") from exc
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise BrokerError(
                "cannot compile the broker guard plugin (needs gcc and Debian's mosquitto-dev "
                f"and libmosquitto-dev; scripts/setup.sh installs them): {proc.stderr.strip()}"
            )
        os.replace(tmp, self.guard_path)
        _atomic_write(stamp, digest + "\n")
        log.info("broker.guard_built", path=str(self.guard_path))
        return True

    def write_passwords(self, terminals: list[tuple[str, str]]) -> int:
        """Write the password file: the service user plus `id:secret_hash` per terminal."""
        if not self.service_password:
            raise BrokerError(
                "no ingest service password: set FLEET_MQTT__SERVICE_PASSWORD "
                "(scripts/setup.sh writes one into .env)"
            )
        lines = [f"{self.service_user}:{hash_secret(self.service_password)}"]
        for tid, secret_hash in terminals:
            if tid == self.service_user or ":" in tid or not secret_hash.startswith("$7$"):
                log.warning("broker.terminal_skipped", terminal=tid)
                continue
            lines.append(f"{tid}:{secret_hash}")
        self.var_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.passwd_path, "\n".join(lines) + "\n", mode=0o600)
        return len(lines) - 1

    async def load_terminals(self, dsn: str) -> list[tuple[str, str]] | None:
        """Active MQTT terminals from the database, or None if the database or table is absent.

        JT/T 808 terminals speak TCP to the gateway (telematics/jt808) and get no broker login.
        """
        try:
            conn = await asyncpg.connect(dsn, server_settings={"application_name": "cli"})
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("broker.db_unavailable", error=str(exc))
            return None
        try:
            if not await conn.fetchval("SELECT to_regclass('terminals') IS NOT NULL"):
                return None
            rows = await conn.fetch(
                "SELECT id, secret_hash FROM terminals WHERE active AND protocol <> 'jt808'"
                " ORDER BY id"
            )
            return [(r["id"], r["secret_hash"]) for r in rows]
        finally:
            await conn.close()

    async def sync(self, dsn: str | None) -> int:
        """Re-render config, rewrite the password file from the DB and reload if running."""
        self.render()
        terminals = await self.load_terminals(dsn) if dsn else None
        n = self.write_passwords(terminals or [])
        if self.pid() is not None:
            self.reload()
        log.info("broker.synced", terminals=n, var_dir=str(self.var_dir))
        return n

    # ---- process --------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The running broker's pid (from its pid file), or None."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A recycled pid would not be mosquitto: check the command line.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid
        return pid if b"mosquitto" in cmdline and str(self.conf_path).encode() in cmdline else None

    def listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def status(self) -> BrokerStatus:
        return BrokerStatus(
            running=self.pid() is not None,
            pid=self.pid(),
            listening=self.listening(),
            host=self.host,
            port=self.port,
            var_dir=self.var_dir,
        )

    @property
    def started_path(self) -> Path:
        """What the running broker was started with: its config and the guard's digest."""
        return self.var_dir / "mosquitto.started"

    def _fingerprint(self) -> str:
        stamp = self.guard_path.with_name(self.guard_path.name + ".sha256")
        guard = stamp.read_text() if stamp.exists() else ""
        return hashlib.sha256((self.conf_path.read_text() + guard).encode()).hexdigest()

    def stale(self) -> bool:
        """Runs with a config or guard plugin older than the rendered one (a SIGHUP reloads
        passwords and ACL, not plugins or listener settings: a restart is needed)."""
        if self.pid() is None:
            return False
        try:
            return self.started_path.read_text().strip() != self._fingerprint()
        except OSError:
            return True  # started before fingerprints were kept

    def start(self, *, timeout_s: float = 10.0) -> bool:
        """Start the broker as a daemon; False if it was already running (idempotent).

        Call `sync` (or at least `render` + `write_passwords`) first.
        """
        if self.pid() is not None:
            return False
        if self.listening():
            raise BrokerError(f"port {self.host}:{self.port} is taken by another process")
        if not self.passwd_path.exists() or not self.conf_path.exists():
            raise BrokerError("broker not configured: run sync first")
        self.pid_path.unlink(missing_ok=True)
        proc = subprocess.run(
            [MOSQUITTO, "-c", str(self.conf_path), "-d"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise BrokerError(f"mosquitto failed ({proc.returncode}): {proc.stderr.strip()}")
        _atomic_write(self.started_path, self._fingerprint() + "\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is not None and self.listening():
                log.info("broker.started", pid=self.pid(), port=self.port)
                return True
            time.sleep(0.05)
        raise BrokerError(f"mosquitto did not come up on {self.port}; see {self.log_path}")

    def stop(self, *, timeout_s: float = 15.0) -> bool:
        """SIGTERM (the broker saves its persistence file) and wait; False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None:
                log.info("broker.stopped", pid=pid)
                return True
            time.sleep(0.05)
        raise BrokerError(f"mosquitto (pid {pid}) did not stop within {timeout_s}s")

    # ---- ingest readiness (probe) and gated restart --------------------------------------

    def probe_topics(self) -> list[str]:
        """Topics the service user may publish to (the ACL pattern covers its own name)."""
        base = f"{self.topic_prefix}/{self.service_user}"
        return [f"{base}/position", f"{base}/positions"]

    def ingest_subscribed(self, *, timeout_s: float = 5.0) -> bool:
        """Does a subscriber (the ingest) match both ping topics right now?

        Publishes a probe as the service user with MQTT v5: the broker answers PUBACK
        "No matching subscribers" (0x10) when nobody would receive it. The ingest drops
        probes (terminal id = service user) without storing them.
        """
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        codes: dict[int, int] = {}
        done = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self.service_user}-probe-{os.getpid()}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(self.service_user, self.service_password)

        def on_publish(_c: object, _u: object, mid: int, rc: object, _p: object) -> None:
            codes[mid] = int(getattr(rc, "value", 0))
            if len(codes) == 2:
                done.set()

        client.on_publish = on_publish
        try:
            client.connect(self.host, self.port, keepalive=10)
        except OSError:
            return False
        client.loop_start()
        try:
            for topic in self.probe_topics():
                client.publish(topic, b'{"probe": true}', qos=1)
            done.wait(timeout_s)
        finally:
            client.disconnect()
            client.loop_stop()
        return len(codes) == 2 and all(c == 0 for c in codes.values())

    def wait_for_ingest(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ingest_subscribed(timeout_s=max(0.5, min(5.0, deadline - time.monotonic()))):
                return True
            time.sleep(0.3)
        return False

    async def restart(self, dsn: str | None, *, gate_s: float = 30.0) -> bool:
        """Stop, then start admitting terminals only once an ingest has resubscribed.

        Mosquitto 2.0 does not persist shared subscriptions: after a restart the ingest's
        session (and the pings queued for it) is back, but its `$share/...` subscription is
        not until the ingest resubscribes. A ping accepted in between would match no
        subscriber and be dropped although the terminal got its PUBACK. So the broker comes
        back with only the service user in its password file; terminals are refused (they
        keep their pings and retry) until a probe shows an ingest subscribed, or `gate_s`
        passes. Returns whether an ingest was seen.
        """
        self.stop()
        self.render()
        terminals = await self.load_terminals(dsn) if dsn else None
        self.write_passwords([])
        self.start()
        seen = await asyncio.to_thread(self.wait_for_ingest, gate_s)
        if not seen:
            log.warning("broker.no_ingest", gate_s=gate_s)
        self.write_passwords(terminals or [])
        self.reload()
        log.info("broker.gate_open", ingest_seen=seen)
        return seen

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            log.info("broker.reloaded", pid=pid)


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
