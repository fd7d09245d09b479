"""The ingest pipeline: an explicit, ordered tuple of small stages over one batch.

    decode -> validate -> identify -> screen -> flag        (PRE_COMMIT_STAGES, here)
    store (one transaction)                                 (telematics/ingest/store.py)
    ack to the broker, then post-commit hooks: publish, derive...   (telematics/ingest/mqtt.py)

Every transport shares it: MQTT deliveries enter at `decode` (`prepare`); the JT/T 808
gateway decodes its binary frames itself and hands the items to the same
validate -> identify -> screen -> flag (`CHECK_STAGES`, `check`), then the same store and
post-commit hooks (telematics/ingest/commit.py).

Each stage takes the batch and moves items forward or rejects them with a reason; a
failing item never stops the others, and no stage raises for bad input. Rejections are
stored with the raw payload in `rejected_pings`.

Hooks for derived state (T2's trips, status, rules): `Hooks.in_transaction` run inside the
batch's transaction (conn, accepted) before commit; `Hooks.post_commit` run after the broker
has been acknowledged (accepted). Both see the accepted pings of the batch sorted by
(vehicle_id, ts), each with `.new` telling whether this delivery inserted the row (False for
a redelivered duplicate).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import orjson
from pydantic import ValidationError

from fleet.distance import great_circle_m
from telematics.ingest.schemas import (
    MAX_ARRAY_PINGS,
    MAX_MESSAGE_BYTES,
    ONE_PING,
    PING_ARRAY,
    IngestSettings,
    Ping,
    ValidPing,
)
from telematics.positions import flags as F


@dataclass(slots=True)
class Delivery:
    """One MQTT message as received (mid/gen identify it for the broker acknowledgement)."""

    topic: str
    payload: bytes | bytearray
    received_at: float  # epoch seconds, ingest clock
    mid: int = 0
    gen: int = 0


@dataclass(frozen=True, slots=True)
class Encoded:
    """A ping still inside its message's JSON (decoded on the hot path straight into a
    `ValidPing`); its JSON value is only rebuilt if the ping is rejected after validation.
    Another transport subclasses it with its own `value()` (telematics/jt808)."""

    payload: bytes | bytearray
    index: int | None = None  # element of a `.../positions` array

    def value(self) -> Any:
        v = orjson.loads(self.payload)
        return v if self.index is None else v[self.index]


@dataclass(slots=True)
class Item:
    """One ping on its way through the stages."""

    terminal_id: str
    topic: str
    raw: Any  # decoded JSON value of this ping (or its `Encoded` message)
    received_at: float
    ping: ValidPing | None = None
    vehicle_id: int = 0
    org_path: str | None = None
    flags: int = 0
    new: bool = False  # set by the store: this delivery inserted the row
    epoch: float = 0.0  # ping.ts as epoch seconds (set with `ping`)

    @property
    def ts(self) -> datetime:
        assert self.ping is not None
        return self.ping.ts


@dataclass(slots=True)
class Rejection:
    received_at: float
    terminal_id: str | None
    topic: str
    reason: str
    detail: str | None
    payload: bytes


@dataclass
class Batch:
    deliveries: list[Delivery]
    items: list[Item] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    # terminals whose `/positions` array exceeded the contract's limits (accepted all the
    # same: the broker let it through, and its pings are as good as any)
    over_contract: list[str] = field(default_factory=list)

    def note_array(self, terminal_id: str, pings: int, size: int) -> None:
        if pings > MAX_ARRAY_PINGS or size > MAX_MESSAGE_BYTES:
            self.over_contract.append(terminal_id)
            self.stats["over_contract_arrays"] += 1

    def reject(self, item: Item, reason: str, detail: str | None = None) -> None:
        raw = item.raw
        if isinstance(raw, Encoded):
            raw = raw.value()
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else orjson.dumps(raw)
        self.rejected.append(
            Rejection(item.received_at, item.terminal_id, item.topic, reason, detail, payload)
        )
        self.stats[f"rejected.{reason}"] += 1


@dataclass(frozen=True, slots=True)
class TerminalInfo:
    terminal_id: str
    active: bool
    vehicle_id: int | None
    org_path: str | None
    # The vehicle's live position when loaded (reference for jump detection).
    last_ts: float | None = None
    last_lat: float | None = None
    last_lon: float | None = None


class TerminalLookup(Protocol):
    async def resolve(self, terminal_ids: set[str]) -> dict[str, TerminalInfo]: ...


@dataclass(slots=True)
class _Ref:
    """The last trustworthy point of a vehicle (jump-detection reference)."""

    ts: float
    lat: float
    lon: float
    jumps: int = 0  # consecutive points flagged against this reference


@dataclass
class Context:
    settings: IngestSettings
    terminals: TerminalLookup
    topic_prefix: str = "fleet/v1/terminals"
    # Readiness probes (`fleet broker` publishes as the service user) are dropped silently.
    probe_id: str = "fleet-ingest"
    refs: dict[int, _Ref] = field(default_factory=dict)
    now: Callable[[], float] = time.time


Stage = Callable[[Batch, Context], Awaitable[None]]
InTransactionHook = Callable[[Any, Sequence[Item]], Awaitable[None]]
PostCommitHook = Callable[[Sequence[Item]], Awaitable[None]]


@dataclass
class Hooks:
    in_transaction: list[InTransactionHook] = field(default_factory=list)
    post_commit: list[PostCommitHook] = field(default_factory=list)


# ---- stages -------------------------------------------------------------------------------


async def decode(batch: Batch, ctx: Context) -> None:
    """Topic -> terminal id and kind; payload -> JSON object(s).

    Hot path: a message whose every ping `PingWire` decodes strictly is validated here in
    the same pass (msgspec, straight from the bytes); any other message is decoded as plain
    JSON and left to `validate`, which decides with the reference model `Ping`. A message
    goes one way or the other whole, so what is accepted or rejected, and why, is the same
    as decoding everything as JSON and validating each ping with `Ping`.
    """
    prefix = ctx.topic_prefix.rstrip("/") + "/"
    items = batch.items
    stats = batch.stats
    for d in batch.deliveries:
        stats["messages"] += 1
        topic = d.topic
        tid, _, kind = topic.removeprefix(prefix).partition("/")
        if tid == ctx.probe_id:
            stats["probes"] += 1
            continue
        if not topic.startswith(prefix) or not tid or kind not in ("position", "positions"):
            batch.reject(Item(tid, topic, d.payload, d.received_at), "bad_topic", topic)
            continue
        try:
            if kind == "position":
                p = ValidPing.from_wire(ONE_PING.decode(d.payload))
                items.append(
                    Item(tid, topic, Encoded(d.payload), d.received_at, p, epoch=p.ts.timestamp())
                )
            else:
                pings = [ValidPing.from_wire(w) for w in PING_ARRAY.decode(d.payload)]
                batch.note_array(tid, len(pings), len(d.payload))
                for k, p in enumerate(pings):
                    raw = Encoded(d.payload, k)
                    items.append(Item(tid, topic, raw, d.received_at, p, epoch=p.ts.timestamp()))
        except (msgspec.DecodeError, ValueError):  # msgspec.ValidationError is a DecodeError
            _decode_json(batch, d, tid, kind)
    stats["pings"] += len(items)


def _decode_json(batch: Batch, d: Delivery, tid: str, kind: str) -> None:
    """One message as plain JSON; its pings are validated by `validate` (with `Ping`)."""
    item = Item(tid, d.topic, d.payload, d.received_at)
    try:
        value = orjson.loads(d.payload)
    except orjson.JSONDecodeError as exc:
        batch.reject(item, "malformed_json", str(exc)[:200])
        return
    values = value if kind == "positions" and isinstance(value, list) else [value]
    if kind == "positions" and not isinstance(value, list):
        batch.reject(item, "malformed_json", "positions must be a JSON array")
        return
    if kind == "positions":
        batch.note_array(tid, len(values), len(d.payload))
    for v in values:
        one = Item(tid, d.topic, v, d.received_at)
        if isinstance(v, dict):
            batch.items.append(one)
        else:
            batch.reject(one, "malformed_json", "a ping must be a JSON object")


_RANGE_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


def _reason(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_url=False, include_input=False)
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)[:300]
    for e in errors:
        if e["type"] == "missing":
            return "missing_field", detail
    for e in errors:
        loc = e["loc"][0] if e["loc"] else ""
        if loc in ("lat", "lon") and e["type"] in _RANGE_ERRORS:
            return "out_of_range_coordinates", detail
        if loc == "ts":
            return "bad_timestamp", detail
    for e in errors:
        if e["type"] in _RANGE_ERRORS:
            return "out_of_range", detail
    return "invalid_field", detail


async def validate(batch: Batch, ctx: Context) -> None:
    """Field types and ranges (pydantic `Ping`) of the pings `decode` did not validate."""
    if all(item.ping is not None for item in batch.items):
        return
    kept = []
    for item in batch.items:
        if item.ping is None:
            try:
                item.ping = p = ValidPing.of(Ping.model_validate(item.raw))
            except ValidationError as exc:
                batch.reject(item, *_reason(exc))
                continue
            item.epoch = p.ts.timestamp()
        kept.append(item)
    batch.items = kept


async def identify(batch: Batch, ctx: Context) -> None:
    """Terminal id (from the topic; the broker ACL guarantees the publisher) -> vehicle."""
    if not batch.items:
        return
    known = await ctx.terminals.resolve({i.terminal_id for i in batch.items})
    kept = []
    for item in batch.items:
        info = known.get(item.terminal_id)
        if info is None:
            batch.reject(item, "unknown_terminal")
        elif not info.active:
            batch.reject(item, "inactive_terminal")
        elif info.vehicle_id is None:
            batch.reject(item, "unassigned_terminal")
        else:
            item.vehicle_id = info.vehicle_id
            item.org_path = info.org_path
            if info.vehicle_id not in ctx.refs and info.last_ts is not None:
                assert info.last_lat is not None and info.last_lon is not None
                ctx.refs[info.vehicle_id] = _Ref(info.last_ts, info.last_lat, info.last_lon)
            kept.append(item)
    batch.items = kept


async def screen(batch: Batch, ctx: Context) -> None:
    """Timestamps outside the accepted window (too far in the future or the past)."""
    now = ctx.now()
    latest = now + ctx.settings.max_future_s
    earliest = now - ctx.settings.max_past_days * 86_400
    kept = []
    for item in batch.items:
        ts = item.epoch
        if ts > latest:
            batch.reject(item, "future_ts", f"{ts - now:.0f}s ahead of the ingest clock")
        elif ts < earliest:
            batch.reject(item, "stale_ts", f"older than {ctx.settings.max_past_days} days")
        else:
            kept.append(item)
    batch.items = kept


# After this many consecutive "jumps" from the same reference the vehicle really is elsewhere
# (terminal moved, long gap): the new place becomes the reference.
_RELOCATE_AFTER = 3


async def flag(batch: Batch, ctx: Context) -> None:
    """Valid but suspect points: stored with flags, never dropped (telematics.positions.flags)."""
    s = ctx.settings
    limit_ms = s.jump_speed_kmh / 3.6
    no_fix = F.INVALID_FIX | F.NULL_ISLAND
    batch.items.sort(key=_vehicle_time)
    prev_vehicle = -1
    ref: _Ref | None = None
    late: set[int] = set()
    for item in batch.items:
        p = item.ping
        assert p is not None
        f = 0
        if p.fix is False:
            f |= F.INVALID_FIX
        if p.lat == 0 and p.lon == 0:
            f |= F.NULL_ISLAND
        if p.sats is not None and p.sats < s.low_sats:
            f |= F.LOW_SATS
        if item.vehicle_id != prev_vehicle:
            prev_vehicle = item.vehicle_id
            ref = ctx.refs.get(item.vehicle_id)
        ts = item.epoch
        if f & no_fix:
            item.flags = f
            continue
        if ref is not None and ts > ref.ts:
            dt = max(ts - ref.ts, 1.0)
            if great_circle_m(ref.lat, ref.lon, p.lat, p.lon) / dt > limit_ms:
                f |= F.JUMP
                ref.jumps += 1
                if ref.jumps >= _RELOCATE_AFTER:
                    ref = _Ref(ts, p.lat, p.lon)
                    ctx.refs[item.vehicle_id] = ref
            else:
                ref.ts, ref.lat, ref.lon, ref.jumps = ts, p.lat, p.lon, 0
        elif ref is None:
            ref = _Ref(ts, p.lat, p.lon)
            ctx.refs[item.vehicle_id] = ref
        else:
            # ts <= ref.ts: a late (buffered) point, checked against its neighbours in
            # the batch below (a buffered array arrives whole).
            late.add(id(item))
        item.flags = f
    if late:
        _flag_late_sequences(batch, late, limit_ms)
    for item in batch.items:
        if item.flags:
            for name in F.names(item.flags):
                batch.stats[f"flagged.{name}"] += 1


def _vehicle_time(item: Item) -> tuple[int, float]:
    # epoch seconds order datetimes exactly at microsecond resolution (float spacing there
    # is < 0.3 µs for centuries to come)
    return item.vehicle_id, item.epoch


def _flag_late_sequences(batch: Batch, late: set[int], limit_ms: float) -> None:
    """Within one vehicle's points of the batch, flag jumps between consecutive points.

    Covers buffered arrays (older than the live reference) that the pass above skips.
    """
    prev: Item | None = None
    for item in batch.items:
        p = item.ping
        assert p is not None
        if item.flags & (F.INVALID_FIX | F.NULL_ISLAND | F.JUMP):
            continue  # not a reference for its neighbours
        if (
            id(item) in late
            and prev is not None
            and prev.vehicle_id == item.vehicle_id
            and prev.ping is not None
        ):
            dt = max(item.epoch - prev.epoch, 1.0)
            d = great_circle_m(prev.ping.lat, prev.ping.lon, p.lat, p.lon)
            if d / dt > limit_ms:
                item.flags |= F.JUMP
                continue
        prev = item


# What follows decoding, whatever the transport.
CHECK_STAGES: tuple[Stage, ...] = (validate, identify, screen, flag)
PRE_COMMIT_STAGES: tuple[Stage, ...] = (decode, *CHECK_STAGES)


async def prepare(deliveries: list[Delivery], ctx: Context) -> Batch:
    """Run the pre-commit stages over one batch of deliveries."""
    batch = Batch(deliveries)
    for stage in PRE_COMMIT_STAGES:
        await stage(batch, ctx)
    batch.stats["accepted"] = len(batch.items)
    return batch


async def check(batch: Batch, ctx: Context) -> Batch:
    """Run the stages after decoding over items a transport decoded itself (JT/T 808)."""
    for stage in CHECK_STAGES:
        await stage(batch, ctx)
    batch.stats["accepted"] = len(batch.items)
    return batch


def position_message(item: Item) -> dict[str, Any]:
    """One item of a `fleet.positions.v1` bus message (telematics/bus.py contract)."""
    p = item.ping
    assert p is not None
    return {
        "vehicle_id": item.vehicle_id,
        "org_path": item.org_path,
        "ts": p.ts.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "lat": p.lat,
        "lon": p.lon,
        "speed_kmh": p.speed_kmh,
        "heading_deg": p.heading_deg,
        "acc": p.acc,
        "flags": item.flags,
    }
