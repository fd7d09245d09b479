"""Pipeline stages in process (no broker, no database): decode, validate, screen, flag."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from telematics import flags as F
from telematics.pipeline import Context, Delivery, TerminalInfo, position_message, prepare
from telematics.schemas import IngestSettings, Ping


class Directory:
    """Terminal lookup stub for the in-process stages: GX* known, GXOFF* inactive."""

    async def resolve(self, ids: set[str]) -> dict[str, TerminalInfo]:
        out = {}
        for t in ids:
            if t.startswith("GXOFF"):
                out[t] = TerminalInfo(t, False, 99, "1.2.3.4")
            elif t.startswith("GX"):
                out[t] = TerminalInfo(t, True, int(t[2:]), "1.2.3.4")
        return out


def ctx() -> Context:
    return Context(IngestSettings(), Directory())


def d(tid: str, body: object, kind: str = "position") -> Delivery:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    return Delivery(f"fleet/v1/terminals/{tid}/{kind}", payload, time.time())


def p(ts: float, lat: float = 22.8, lon: float = 108.3, **kw: object) -> dict[str, object]:
    return {"ts": int(ts * 1000), "lat": lat, "lon": lon, "speed_kmh": 30, "heading_deg": 90, **kw}


def test_ping_timestamps_rfc3339_with_offset_or_epoch_ms() -> None:
    a = Ping.model_validate({**p(0), "ts": "2026-11-26T12:00:00+08:00"})
    b = Ping.model_validate({**p(0), "ts": 1_795_665_600_000})
    assert a.ts == datetime(2026, 11, 26, 4, 0, tzinfo=UTC) == b.ts


async def test_reasons_and_counts() -> None:
    now = time.time()
    batch = await prepare(
        [
            d("GX00000001", b"[{"),
            d("GX00000001", {"lat": 1}),
            d("GX00000001", p(now, lat=-91)),
            d("GX00000001", p(now, sats=300)),
            d("GX00000001", p(now + 3600)),
            d("GX00000001", p(now - 40 * 86400)),
            d("NOPE0001", p(now)),
            d("GXOFF001", p(now)),
            d("GX00000001", p(now), kind="other"),
            d("fleet-ingest", {"probe": True}),
            d("GX00000001", [p(now - 20), p(now - 10), 5], kind="positions"),
            d("GX00000001", p(now)),
        ],
        ctx(),
    )
    reasons = sorted(r.reason for r in batch.rejected)
    assert reasons == sorted(
        [
            "malformed_json",
            "missing_field",
            "out_of_range_coordinates",
            "out_of_range",
            "future_ts",
            "stale_ts",
            "unknown_terminal",
            "inactive_terminal",
            "bad_topic",
            "malformed_json",
        ]
    )
    assert batch.stats["probes"] == 1
    assert [i.ts for i in batch.items] == sorted(i.ts for i in batch.items)
    assert len(batch.items) == 3
    assert batch.rejected[0].payload == b"[{"


async def test_flags_and_relocation() -> None:
    c = ctx()
    t = time.time() - 3600
    pts = [
        p(t),
        p(t + 10, lat=22.8005),
        p(t + 20, lat=23.5),  # ~78 km in 10 s
        p(t + 30, lat=22.801),
        p(t + 40, fix=False, lat=10),
        p(t + 50, lat=0, lon=0),
        p(t + 60, lat=22.8015, sats=2),
    ]
    batch = await prepare([d("GX00000007", pts, kind="positions")], c)
    got = [i.flags for i in batch.items]
    assert got[0] == 0 and got[1] == 0 and got[3] == 0
    assert got[2] == F.JUMP
    assert got[4] & F.INVALID_FIX and not got[4] & F.JUMP
    assert got[5] & F.NULL_ISLAND
    assert got[6] == F.LOW_SATS
    assert F.names(F.JUMP | F.LOW_SATS) == ["jump", "low_sats"]
    # A vehicle that really moved far (long gap, terminal swapped): after 3 "jumps" the
    # new place becomes the reference.
    far = [p(t + 70 + 10 * k, lat=25.0 + k * 0.0005) for k in range(5)]
    batch = await prepare([d("GX00000007", far, kind="positions")], c)
    assert [i.flags for i in batch.items] == [F.JUMP, F.JUMP, F.JUMP, 0, 0]


async def test_late_buffered_array_checked_point_to_point() -> None:
    c = ctx()
    t = time.time() - 600
    await prepare([d("GX00000008", p(t))], c)
    late = [p(t - 300 + 10 * k, lat=22.7 + k * 0.0005) for k in range(5)]
    late[2]["lat"] = 24.0
    batch = await prepare([d("GX00000008", late[::-1], kind="positions")], c)
    assert [i.flags for i in batch.items] == [0, 0, F.JUMP, 0, 0]
    msg = position_message(batch.items[0])
    assert msg["vehicle_id"] == 8 and msg["org_path"] == "1.2.3.4" and msg["ts"].endswith("Z")
