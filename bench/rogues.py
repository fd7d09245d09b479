"""Rogue terminals for the ingest benchmarks: they try to take pings from the consumers.

Each logs in as a real terminal of the rig (its own password, its terminal id as client id),
alternating MQTT 3.1.1 and 5 with persistent sessions, and subscribes to the consumers'
shared groups, `#` and `$SYS/#`. Before the broker's guard (issue 9, item 2) Mosquitto
granted these and dealt every other ping of a group to the rogue, whose read ACL then
dropped it: acknowledged pings went missing. `python -m bench.ingest_throughput --rogues N`
keeps N of them connected for the whole run and reports how many subscriptions were granted.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.ingest_common import TERMINAL_KEY
from fleet.config import Settings
from telematics.broker.credentials import derived_secret


class Rogues:
    def __init__(self, settings: Settings, tids: list[str], groups: list[str]) -> None:
        m = settings.mqtt
        base = m.topic_prefix.rstrip("/")
        self.filters = ["#", "$SYS/#"]
        for g in groups:
            self.filters += [f"$share/{g}/{base}/+/position", f"$share/{g}/{base}/+/positions"]
        self.clients: list[mqtt.Client] = []
        self.granted = 0
        self.connected = 0
        self.received = 0
        lock = threading.Lock()
        done = threading.Semaphore(0)
        for i, tid in enumerate(tids):
            v5 = i % 2 == 1
            if v5:
                c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=tid, protocol=mqtt.MQTTv5)
            else:
                c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=tid, clean_session=False)
            c.username_pw_set(tid, derived_secret(TERMINAL_KEY, tid))

            def on_connect(cl: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
                if rc.is_failure:
                    done.release()
                    return
                with lock:
                    self.connected += 1
                cl.subscribe([(f, 1) for f in self.filters])

            def on_subscribe(_c: Any, _u: Any, _m: Any, rcs: Any, _p: Any) -> None:
                with lock:
                    self.granted += sum(not rc.is_failure for rc in rcs)
                done.release()

            def on_message(_c: Any, _u: Any, _m: Any) -> None:
                with lock:
                    self.received += 1

            c.on_connect = on_connect
            c.on_subscribe = on_subscribe
            c.on_message = on_message
            if v5:
                props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 3600
                c.connect(m.host, m.port, clean_start=False, properties=props)
            else:
                c.connect(m.host, m.port)
            c.loop_start()
            self.clients.append(c)
        for _ in tids:
            done.acquire(timeout=10)

    @property
    def requested(self) -> int:
        return self.connected * len(self.filters)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()
