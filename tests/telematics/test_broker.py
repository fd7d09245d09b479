"""The project's broker: authentication, per-terminal ACL, queue sizing, idempotent start."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleet.config import Settings
from telematics.broker.mosquitto import MAX_QUEUED, Broker

from .conftest import Publisher


class Listener:
    """The ingest's service user subscribed to every terminal topic (plain subscription)."""

    def __init__(self, settings: Settings) -> None:
        self.got: list[str] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"listen-{uuid.uuid4().hex[:6]}"
        )
        m = settings.mqtt
        self.client.username_pw_set(m.service_user, m.service_password.get_secret_value())
        self.client.on_message = lambda _c, _u, msg: self.got.append(msg.topic)
        self.client.on_subscribe = lambda *_a: self.ready.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(f"{m.topic_prefix}/#", qos=1)
        self.client.connect(m.host, m.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _connack(settings: Settings, username: str | None, password: str | None) -> Any:
    done = threading.Event()
    result: list[Any] = []
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=username or f"probe-{uuid.uuid4().hex[:6]}"
    )
    if username is not None:
        c.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        result.append(rc)
        done.set()

    c.on_connect = on_connect
    c.connect(settings.mqtt.host, settings.mqtt.port)
    c.loop_start()
    done.wait(10)
    c.loop_stop()
    c.disconnect()
    assert result, "no CONNACK"
    return result[0]


def test_anonymous_and_wrong_password_refused(mq_settings: Settings, terminals: Any) -> None:
    (tid,) = terminals(1)
    assert _connack(mq_settings, None, None).is_failure
    assert _connack(mq_settings, tid, "not-the-password").is_failure
    assert _connack(mq_settings, "GX99999999", "whatever").is_failure
    assert not _connack(mq_settings, tid, _pw(tid)).is_failure


def _pw(tid: str) -> str:
    from telematics.broker.credentials import derived_secret

    return derived_secret("test-terminal-key", tid)


def test_terminal_cannot_publish_as_another(
    mq_settings: Settings, terminals: Any, publisher: Any
) -> None:
    a, b = terminals(2)
    listener = Listener(mq_settings)
    try:
        pa: Publisher = publisher(a)
        assert pa.accepted
        prefix = mq_settings.mqtt.topic_prefix
        # MQTT 3.1.1 has no negative PUBACK: the broker acknowledges and drops the message.
        pa.send("position", [{"x": 1}], topic=f"{prefix}/{b}/position")
        pa.send("position", [{"x": 2}], topic="fleet/v1/other")
        pa.send("position", [{"x": 3}])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and f"{prefix}/{a}/position" not in listener.got:
            time.sleep(0.05)
        time.sleep(0.3)  # anything wrongly delivered would have arrived by now
        assert listener.got == [f"{prefix}/{a}/position"]
    finally:
        listener.close()


def test_terminal_cannot_subscribe(mq_settings: Settings, terminals: Any, publisher: Any) -> None:
    a, b = terminals(2)
    p: Publisher = publisher(a)
    granted: list[Any] = []
    done = threading.Event()

    def on_subscribe(_c: Any, _u: Any, _m: Any, rcs: Any, _p: Any) -> None:
        granted.extend(rcs)
        done.set()

    p.client.on_subscribe = on_subscribe
    p.client.subscribe(f"{mq_settings.mqtt.topic_prefix}/{b}/#", qos=1)
    assert done.wait(5)
    # Refused in the SUBACK (fleet_guard; acl_file alone would grant it), and nothing is
    # delivered either (tests/telematics/test_rogue.py tries every kind of subscription).
    assert granted and all(rc.is_failure for rc in granted), granted
    got: list[str] = []
    p.client.on_message = lambda _c, _u, m: got.append(m.topic)
    pb: Publisher = publisher(b)
    assert pb.send("position", [{"y": 1}]) == 1
    time.sleep(0.5)
    assert got == []


def test_rendered_config_has_limits_and_no_anonymous(mqtt_broker: Broker) -> None:
    conf = mqtt_broker.conf_path.read_text()
    assert "allow_anonymous false" in conf
    assert "persistence true" in conf
    assert f"max_queued_messages {MAX_QUEUED}" in conf
    assert f"plugin {mqtt_broker.guard_path.resolve()}" in conf
    assert f"plugin_opt_service_users {mqtt_broker.service_user}" in conf
    acl = (mqtt_broker.var_dir / "acl").read_text()
    assert "pattern write fleet/v1/terminals/%u/#" in acl
    passwd = mqtt_broker.passwd_path.read_text().splitlines()
    assert passwd[0].startswith("fleet-ingest:$7$")
    assert len(passwd) == 1 + 800  # service user + every seeded terminal


def test_start_is_idempotent_and_sync_reloads(mqtt_broker: Broker, mq_db: Settings) -> None:
    pid = mqtt_broker.pid()
    assert pid is not None
    assert mqtt_broker.start() is False  # already running: no-op
    assert asyncio.run(mqtt_broker.sync(mq_db.db.dsn())) == 800
    assert mqtt_broker.pid() == pid and mqtt_broker.status().listening


def test_deactivated_terminal_refused_after_sync(
    mqtt_broker: Broker, mq_db: Settings, mq_settings: Settings, terminals: Any
) -> None:
    import asyncpg

    (tid,) = terminals(1)

    async def set_active(active: bool) -> None:
        conn = await asyncpg.connect(mq_db.db.dsn())
        try:
            await conn.execute("UPDATE terminals SET active = $2 WHERE id = $1", tid, active)
        finally:
            await conn.close()

    asyncio.run(set_active(False))
    try:
        asyncio.run(mqtt_broker.sync(mq_db.db.dsn()))
        time.sleep(0.3)  # SIGHUP is handled asynchronously by the broker
        assert _connack(mq_settings, tid, _pw(tid)).is_failure
    finally:
        asyncio.run(set_active(True))
        asyncio.run(mqtt_broker.sync(mq_db.db.dsn()))
    time.sleep(0.3)
    assert not _connack(mq_settings, tid, _pw(tid)).is_failure


def test_a_broker_started_from_an_older_config_is_stale(mqtt_broker: Broker) -> None:
    """`fleet broker start` restarts such a broker: a SIGHUP does not load plugins."""
    assert not mqtt_broker.stale()
    assert mqtt_broker.build_guard() is False  # same source: not rebuilt
    conf = mqtt_broker.conf_path.read_text()
    try:
        mqtt_broker.conf_path.write_text(conf + "# changed\n")
        assert mqtt_broker.stale()
    finally:
        mqtt_broker.render()
    assert not mqtt_broker.stale()
