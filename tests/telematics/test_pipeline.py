"""Pipeline stages in process (no broker, no database): decode, validate, screen, flag."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

import msgspec
import orjson
from pydantic import ValidationError

from telematics.ingest.pipeline import Context, Delivery, TerminalInfo, position_message, prepare
from telematics.ingest.schemas import ONE_PING, IngestSettings, Ping, ValidPing
from telematics.positions import flags as F


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


def _fast(raw: bytes) -> ValidPing | None:
    try:
        return ValidPing.from_wire(ONE_PING.decode(raw))
    except (msgspec.DecodeError, ValueError):
        return None


def _reference(raw: bytes) -> ValidPing | None:
    try:
        return ValidPing.of(Ping.model_validate(orjson.loads(raw)))
    except (orjson.JSONDecodeError, ValidationError):
        return None


def _corpus(n: int) -> list[bytes]:
    """Valid pings and near misses: lax types, bounds, odd timestamps, extra fields."""
    rng = random.Random(7)
    base: dict[str, object] = {
        "ts": 1_795_665_600_123,
        "lat": 22.8,
        "lon": 108.3,
        "speed_kmh": 30.0,
        "heading_deg": 90,
        "alt_m": 80.5,
        "odometer_km": 1234.5,
        "acc": True,
        "fix": True,
        "sats": 9,
        "alarm": 0,
        "seq": 17,
    }
    variants: dict[str, list[object]] = {
        "ts": [
            1_795_665_600_000, 1_795_665_600_000.5, 1.7956656e12, 1_795_665_600, True, None,
            "2026-11-26T12:00:00+08:00", "2026-11-26T04:00:00Z", "2026-11-26t04:00:00z",
            "2026-11-26T04:00:00.1234567Z", "2026-11-26 04:00:00+00:00", "2026-11-26T04:00:00",
            "20261126T040000Z", "nope", 10**30, 32_503_680_000_001, -1,
        ],
        "lat": [0, -0.0, 90, 90.0000001, -90, "22.8", True, None, 1e308, 2**63],
        "lon": [180, -180.5, 0, "x", 108.30000000000001, 1.0000000000000000000001],
        "speed_kmh": [0, 400, 400.01, -0.0, "30", "fast", False],
        "heading_deg": [360, 361, 0.0],
        "alt_m": [None, -1000, -1001, 1e4],
        "odometer_km": [None, 0, 10_000_000, 1e7 + 1, "5"],
        "acc": [None, False, 0, 1, "true", "yes"],
        "fix": [None, False, 1.0],
        "sats": [None, 0, 255, 256, 4.0, 4.5, "4", True, -0],
        "alarm": [None, 2**63 - 1, 2**63, 10**30],
        "seq": [None, 0, -1, 2**62],
    }  # fmt: skip
    out = [orjson.dumps(base)]
    keys = list(variants)
    for _ in range(n):
        body = dict(base)
        for key in rng.sample(keys, rng.choice((1, 1, 2, 3))):
            body[key] = rng.choice(variants[key])
        if rng.random() < 0.1:
            del body[rng.choice(keys)]
        if rng.random() < 0.1:
            body["firmware"] = "2.1.0"
        out.append(json.dumps(body).encode())  # stdlib: big integers too
    out += [
        b'{"ts": 1795665600000, "lat": 1, "lon": 2, "speed_kmh": 3, "heading_deg": 4, "x": 1e999}',
        b'{"ts": 1795665600000, "lat": 1, "lon": 2, "speed_kmh": 3, "heading_deg": 4, "x": "\xff"}',
        b'{"ts": 1795665600000, "lat": 1, "lon": 2, "speed_kmh": 3, "heading_deg": 4, "lat": 5}',
        b'{"ts": "\\ud800", "lat": 1, "lon": 2, "speed_kmh": 3, "heading_deg": 4}',
        b'{"ts": 1795665600000, "lat": NaN, "lon": 2, "speed_kmh": 3, "heading_deg": 4}',
        b'{"ts": 1795665600000, "lat": 1e400, "lon": 2, "speed_kmh": 3, "heading_deg": 4}',
        b'[{"ts": 1795665600000, "lat": 1, "lon": 2, "speed_kmh": 3, "heading_deg": 4}]',
        b'{"ts": 1795665600000, "lat": 1, "lon": 2, "speed_kmh": 3, "heading_deg": 4} x',
    ]
    return out


def test_fast_decoder_accepts_only_what_the_reference_model_accepts_identically() -> None:
    fast_hits = 0
    for raw in _corpus(3000):
        fast = _fast(raw)
        if fast is not None:
            fast_hits += 1
            assert fast == _reference(raw), raw
            assert fast.ts.tzinfo is UTC
    assert fast_hits > 300  # the usual shapes do take the fast path
    typical = p(time.time(), acc=True, fix=True, sats=9)
    assert _fast(orjson.dumps(typical)) is not None
    assert _fast(orjson.dumps({**typical, "ts": "2026-11-26T12:00:00+08:00"})) is not None


async def test_lax_values_and_unknown_fields_still_accepted_through_the_reference_model() -> None:
    now = time.time()
    batch = await prepare(
        [
            d("GX00000003", {**p(now), "speed_kmh": "30.5", "acc": 1}),
            d("GX00000003", {**p(now + 1), "firmware": "2.1.0"}),
            d("GX00000003", [p(now + 2), {**p(now + 3), "sats": 4.0}], kind="positions"),
        ],
        ctx(),
    )
    assert not batch.rejected
    got = [(i.ping.speed_kmh, i.ping.acc, i.ping.sats) for i in batch.items if i.ping]
    assert got == [(30.5, True, None), (30, None, None), (30, None, None), (30, None, 4)]


async def test_rejected_after_validation_keeps_the_ping_json() -> None:
    now = time.time()
    one = p(now)
    arr = [p(now - 20), p(now + 3600)]
    batch = await prepare(
        [d("NOPE0001", one), d("GX00000004", arr, kind="positions")],
        ctx(),
    )
    by_reason = {r.reason: r.payload for r in batch.rejected}
    assert by_reason["unknown_terminal"] == orjson.dumps(one)
    assert by_reason["future_ts"] == orjson.dumps(arr[1])
    assert len(batch.items) == 1
