"""Terminals probing the broker as an adversary would: nothing they try costs a stored ping.

The defect (issue 9, item 2): a terminal could subscribe to the ingest's shared
subscription; Mosquitto then dealt it every other ping, its read ACL refused delivery, and
the ping was gone although the publisher had its PUBACK (40 published, 40 acknowledged, 20
stored). Here real paho clients, logged in as terminals with their own passwords, try every
subscription a terminal might (MQTT 3.1.1 and 5, clean and persistent sessions, a persistent
rogue that leaves and comes back, a rogue taking over the ingest's client id) while another
terminal publishes; every acknowledged ping must be stored.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.config import Settings
from telematics.broker.credentials import derived_secret

from .conftest import TERMINAL_KEY, IngestProcs, wait_rows
from .test_ingest import now, ping


class Rogue:
    """A terminal (its own login) that subscribes where it should not and counts what it gets."""

    def __init__(
        self,
        settings: Settings,
        terminal: str,
        *,
        v5: bool,
        persistent: bool,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.terminal = terminal
        self.v5 = v5
        self.persistent = persistent
        self.client_id = terminal if client_id is None else client_id
        self.got: list[str] = []
        self.suback: list[Any] = []
        self.connack: list[Any] = []
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        kwargs: dict[str, Any] = {"client_id": self.client_id}
        if self.v5:
            kwargs["protocol"] = mqtt.MQTTv5
        else:
            kwargs["protocol"] = mqtt.MQTTv311
            kwargs["clean_session"] = not self.persistent
        c = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
        c.username_pw_set(self.terminal, derived_secret(TERMINAL_KEY, self.terminal))
        c.reconnect_delay_set(0.2, 1)

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.connack.append(rc)
            self._connected.set()

        def on_subscribe(_c: Any, _u: Any, _m: Any, rcs: Any, _p: Any) -> None:
            self.suback.extend(rcs)
            self._subscribed.set()

        c.on_connect = on_connect
        c.on_subscribe = on_subscribe
        c.on_message = lambda _c, _u, m: self.got.append(m.topic)
        return c

    def connect(self) -> bool:
        """Connect (a persistent v5 session lives an hour); True if the broker accepted."""
        self._connected.clear()
        m = self.settings.mqtt
        if self.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if self.persistent:
                props.SessionExpiryInterval = 3600
            self.client.connect(
                m.host, m.port, keepalive=30, clean_start=not self.persistent, properties=props
            )
        else:
            self.client.connect(m.host, m.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"
        return not self.connack[-1].is_failure

    def subscribe(self, filters: list[str]) -> list[Any]:
        self._subscribed.clear()
        self.suback.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self._subscribed.wait(10), "no SUBACK"
        return list(self.suback)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rogue_filters(prefix: str, group: str, victim: str) -> list[str]:
    """Every subscription a terminal might try to read others' pings with."""
    return [
        "#",
        "$SYS/#",
        f"$share/{group}/{prefix}/+/position",
        f"$share/{group}/{prefix}/+/positions",
        f"$share/{group}/#",
        f"$share/other/{prefix}/+/position",
        "$share/other/#",
        f"{prefix}/{victim}/position",
        f"{prefix}/+/position",
        f"{prefix}/+/positions",
    ]


@pytest.fixture
def rogues() -> Iterator[list[Rogue]]:
    made: list[Rogue] = []
    yield made
    for r in made:
        r.disconnect()


async def test_rogue_subscribers_lose_no_acknowledged_ping(
    mq_settings: Settings,
    ingest_procs: IngestProcs,
    terminals: Any,
    publisher: Any,
    rogues: list[Rogue],
) -> None:
    victim, *others = terminals(5)
    ingest_procs.start()
    prefix = mq_settings.mqtt.topic_prefix
    filters = rogue_filters(prefix, ingest_procs.group, victim)
    kinds = [(False, False), (False, True), (True, False), (True, True)]  # (v5, persistent)
    granted: dict[str, list[str]] = {}
    for tid, (v5, persistent) in zip(others, kinds, strict=True):
        r = Rogue(mq_settings, tid, v5=v5, persistent=persistent)
        rogues.append(r)
        assert r.connect(), f"{tid} refused at CONNECT: the test needs it logged in"
        codes = r.subscribe(filters)
        key = f"{tid} v5={v5} persistent={persistent}"
        granted[key] = [f for f, rc in zip(filters, codes, strict=True) if not rc.is_failure]

    pub = publisher(victim)
    t0 = now() - timedelta(minutes=40)
    seq = iter(range(10_000))

    def burst(n: int) -> list[dict[str, Any]]:
        return [ping(t0 + timedelta(seconds=next(seq)), 0) for _ in range(n)]

    acked = pub.send("position", burst(40))
    acked += 10 * pub.send("positions", [burst(10), burst(10)])
    # The persistent rogues leave (their sessions stay) and come back later.
    for r in rogues:
        if r.persistent:
            r.disconnect()
    acked += pub.send("position", burst(40))
    for r in rogues:
        if r.persistent:
            r.client = r._client()
            assert r.connect()
    acked += pub.send("position", burst(40))
    assert acked == 140

    dsn = mq_settings.db.dsn()
    sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
    stored = await wait_rows(dsn, sql, (victim,), acked, timeout_s=30)
    assert stored == acked, f"{acked} acknowledged, {stored} stored"
    assert all(r.got == [] for r in rogues), [r.got[:3] for r in rogues]
    # A terminal may subscribe to nothing: every filter is refused in the SUBACK itself.
    assert all(g == [] for g in granted.values()), granted


async def test_terminal_cannot_take_over_the_ingest_session(
    mq_settings: Settings,
    ingest_procs: IngestProcs,
    terminals: Any,
    publisher: Any,
    rogues: list[Rogue],
) -> None:
    """A terminal connecting with the ingest's client id would inherit its shared
    subscription (and its queued pings): the broker refuses that login."""
    victim, rogue_tid, rogue5_tid = terminals(3)
    cid = f"ingest-{ingest_procs.group}-{uuid.uuid4().hex[:4]}"
    ingest = ingest_procs.start(cid)
    pub = publisher(victim)
    t0 = now() - timedelta(minutes=20)
    acked = 0
    accepted = []
    for k, (tid, v5) in enumerate(((rogue_tid, False), (rogue5_tid, True))):
        r = Rogue(mq_settings, tid, v5=v5, persistent=True, client_id=cid)
        rogues.append(r)
        if r.connect():  # it stays (and paho reconnects it when the ingest takes it back)
            accepted.append(tid)
        batch = [ping(t0 + timedelta(seconds=40 * k + i), i) for i in range(40)]
        for p in batch:
            acked += pub.send("position", [p])
            await asyncio.sleep(0.02)
    assert acked == 80
    dsn = mq_settings.db.dsn()
    sql = "SELECT count(*) FROM positions WHERE terminal_id = $1"
    stored = await wait_rows(dsn, sql, (victim,), acked, timeout_s=30)
    assert stored == acked, f"{acked} acknowledged, {stored} stored"
    assert accepted == [], f"terminals {accepted} logged in with the ingest's client id"
    # The ingest kept its session throughout.
    assert "ingest.mqtt_disconnected" not in "\n".join(ingest.lines)


def test_a_terminal_must_log_in_with_its_own_id_as_client_id(
    mq_settings: Settings, terminals: Any
) -> None:
    """Another terminal's id, an id of the service's, or a broker-assigned one: refused."""
    a, b = terminals(2)
    for cid in (b, "fleet-ingest-1", f"{a}x", ""):
        r = Rogue(mq_settings, a, v5=True, persistent=False, client_id=cid)
        try:
            assert not r.connect(), f"terminal {a} logged in as client id {cid!r}"
        finally:
            r.disconnect()
    ok = Rogue(mq_settings, a, v5=False, persistent=False)
    try:
        assert ok.connect()
    finally:
        ok.disconnect()
