"""Edges of the ingest: the MQTT ping contract (DESIGN.md §2) and the ingest's settings.

`Ping` (pydantic) is the contract and the reference validator: it decides what is accepted
and, for a refused ping, why. `PingWire` (msgspec) is the hot path's strict subset of it:
a message it decodes is one `Ping` accepts with the same values (tests compare the two), and
anything it refuses — an unknown field, a numeric string, a bad value — goes through `Ping`
for the verdict and the reason. Either way a stage sees a `ValidPing`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.config import ROOT

# The contract's size limits (docs/telematics-ingest.md, DESIGN §2): a `/positions` array
# carries at most MAX_ARRAY_PINGS pings in at most MAX_MESSAGE_BYTES of JSON; a terminal with
# a longer backlog sends several arrays (telematics.simulator.backlog_arrays). A full-field
# ping is ~190 B, ~300 B at worst, so 1,000 of them fit; the broker takes twice the bytes.
MAX_ARRAY_PINGS = 1_000
MAX_MESSAGE_BYTES = 512 * 1024

# Epoch values below this are taken as seconds by mistake, not milliseconds (2001-09-09).
_MIN_EPOCH_MS = 1_000_000_000_000
_MAX_EPOCH_MS = 32_503_680_000_000  # year 3000


def parse_ts(v: Any) -> datetime:
    """RFC 3339 with an offset, or epoch milliseconds; always returned in UTC."""
    if isinstance(v, bool):
        raise ValueError("ts must be RFC 3339 or epoch milliseconds")
    if isinstance(v, int | float):
        if v < _MIN_EPOCH_MS or v > _MAX_EPOCH_MS:  # 2001 .. year 3000
            raise ValueError("epoch ts must be milliseconds")
        return datetime.fromtimestamp(v / 1000, tz=UTC)
    if isinstance(v, str):
        dt = datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError("ts needs a UTC offset")
        return dt.astimezone(UTC)
    raise ValueError("ts must be RFC 3339 or epoch milliseconds")


class Ping(BaseModel):
    """One position report as a terminal sends it.

    Unknown fields are ignored rather than refused: terminals in the field are upgraded
    slowly and may send more than this contract names; what we store is only what we know.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: datetime
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    speed_kmh: Annotated[float, Field(ge=0, le=400, allow_inf_nan=False)]
    heading_deg: Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)]
    alt_m: Annotated[float, Field(ge=-1000, le=10_000, allow_inf_nan=False)] | None = None
    odometer_km: Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)] | None = None
    acc: bool | None = None
    fix: bool | None = None
    sats: Annotated[int, Field(ge=0, le=255)] | None = None
    alarm: Annotated[int, Field(ge=0, lt=1 << 63)] | None = None
    seq: Annotated[int, Field(ge=0, lt=1 << 63)] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> Any:
        return parse_ts(v)


_INT63 = (1 << 63) - 1


class PingWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """`Ping` as the hot path decodes it: strict JSON types, same ranges, no unknown field.

    Strict where `Ping` is lax (no numeric strings, no 0/1 for booleans, no 10.0 for an int)
    and refusing unknown fields (msgspec skips them without checking what orjson would
    refuse), so whatever this accepts `Ping` accepts identically; `ts` is still raw here
    (`parse_ts` makes it the same datetime as `Ping`).
    """

    ts: int | float | str
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    speed_kmh: Annotated[float, Meta(ge=0, le=400)]
    heading_deg: Annotated[float, Meta(ge=0, le=360)]
    alt_m: Annotated[float, Meta(ge=-1000, le=10_000)] | None = None
    odometer_km: Annotated[float, Meta(ge=0, le=10_000_000)] | None = None
    acc: bool | None = None
    fix: bool | None = None
    sats: Annotated[int, Meta(ge=0, le=255)] | None = None
    alarm: Annotated[int, Meta(ge=0, le=_INT63)] | None = None
    seq: Annotated[int, Meta(ge=0, le=_INT63)] | None = None


class ValidPing(msgspec.Struct, frozen=True, gc=False):
    """A validated ping (`Item.ping`): the fields of `Ping`, `ts` an aware UTC datetime."""

    ts: datetime
    lat: float
    lon: float
    speed_kmh: float
    heading_deg: float
    alt_m: float | None = None
    odometer_km: float | None = None
    acc: bool | None = None
    fix: bool | None = None
    sats: int | None = None
    alarm: int | None = None
    seq: int | None = None

    @classmethod
    def of(cls, p: Ping) -> ValidPing:
        return cls(
            p.ts, p.lat, p.lon, p.speed_kmh, p.heading_deg, p.alt_m, p.odometer_km,
            p.acc, p.fix, p.sats, p.alarm, p.seq,
        )  # fmt: skip

    @classmethod
    def from_wire(cls, w: PingWire) -> ValidPing:
        """Raises ValueError for a `ts` that `Ping` refuses too."""
        return cls(
            parse_ts(w.ts), w.lat, w.lon, w.speed_kmh, w.heading_deg, w.alt_m, w.odometer_km,
            w.acc, w.fix, w.sats, w.alarm, w.seq,
        )  # fmt: skip


ONE_PING = msgspec.json.Decoder(PingWire)
PING_ARRAY = msgspec.json.Decoder(list[PingWire])


class IngestSettings(BaseSettings):
    """Ingest tuning (env FLEET_INGEST__*): batching, screening windows, jump limit."""

    model_config = SettingsConfigDict(
        env_prefix="FLEET_INGEST__", env_file=str(ROOT / ".env"), extra="ignore"
    )

    # Batching: a batch is committed when it holds batch_max pings or batch_wait_ms passed
    # since its first ping arrived.
    batch_max: int = Field(2_000, ge=1, le=50_000)
    batch_wait_ms: int = Field(200, ge=1, le=10_000)
    # Accepted time window around the ingest's clock.
    max_future_s: int = Field(300, ge=0)
    max_past_days: int = Field(30, ge=1)
    # Implied speed between consecutive points above which a point is flagged JUMP.
    jump_speed_kmh: float = Field(250.0, gt=0)
    low_sats: int = Field(4, ge=0)
    # MQTT session: shared-subscription group, stable client id per instance, expiry.
    share_group: str = "ingest"
    client_id: str = "fleet-ingest-1"
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0)
    # Terminal lookups are re-read from the DB after this long (deactivated terminals).
    terminal_cache_s: int = Field(300, ge=1)
    # Rows the derive worker's received_at cursor would not see are queued for it in
    # derive_backlog, in the batch's transaction: rows stored more than derive_late_commit_s
    # after they were received (a batch retried through an outage; keep it well below the
    # derive worker's settle_s) and pings older than derive_old_ping_h when received (keep
    # it below the derive worker's lookback_h).
    derive_late_commit_s: float = Field(5.0, gt=0)
    derive_old_ping_h: float = Field(24.0, gt=0)
