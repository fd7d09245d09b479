"""JT/T 808 message bodies the gateway reads and writes, and how a location becomes a ping.

Terminal -> platform: 0x0001 general reply, 0x0002 heartbeat, 0x0003 unregister, 0x0100
register, 0x0102 authenticate, 0x0200 location, 0x0201 position-query reply, 0x0704 batch.
Platform -> terminal: 0x8001 general reply, 0x8100 register reply, 0x8201 position query,
0x8300 text. Strings are GBK (the standard's encoding); all integers big-endian.

A location's basic part is 28 bytes: alarm DWORD, status DWORD, latitude and longitude DWORD
in 10⁻⁶ degrees (status bit 2 south, bit 3 west), altitude WORD (m), speed WORD (0.1 km/h),
direction WORD (0-359), time BCD[6] YYMMDDhhmmss in GMT+8. Extra items follow as id BYTE,
length BYTE, data: 0x01 mileage DWORD (0.1 km), 0x31 satellites BYTE; others are ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from telematics.ingest.schemas import ValidPing

# message ids
GENERAL_REPLY = 0x0001
HEARTBEAT = 0x0002
UNREGISTER = 0x0003
REGISTER = 0x0100
AUTHENTICATE = 0x0102
LOCATION = 0x0200
QUERY_REPLY = 0x0201
BATCH = 0x0704
PLATFORM_REPLY = 0x8001
REGISTER_REPLY = 0x8100
POSITION_QUERY = 0x8201
TEXT = 0x8300

# 0x8001 results
OK, FAILURE, BAD_MESSAGE, UNSUPPORTED = 0, 1, 2, 3
# 0x8100 results
REG_OK, REG_VEHICLE_TAKEN, REG_NO_VEHICLE, REG_TERMINAL_TAKEN, REG_NO_TERMINAL = 0, 1, 2, 3, 4

CST = timezone(timedelta(hours=8))
_BASIC = struct.Struct(">IIIIhHH")  # alarm, status, lat, lon, alt, speed, direction
_REPLY = struct.Struct(">HHB")
_H = struct.Struct(">H")
_I = struct.Struct(">I")

# status bits
ACC_ON, POSITIONED, SOUTH, WEST = 1, 2, 4, 8


class BodyError(ValueError):
    """A body that does not hold what its message id promises (answered with result 2)."""


def gbk(data: bytes) -> str:
    return data.rstrip(b"\x00").decode("gbk", errors="replace").strip()


# ---- replies ---------------------------------------------------------------------------------


def general_reply(serial: int, msg_id: int, result: int) -> bytes:
    return _REPLY.pack(serial & 0xFFFF, msg_id, result)


def register_reply(serial: int, result: int, code: str | None = None) -> bytes:
    body = _H.pack(serial & 0xFFFF) + bytes((result,))
    return body + code.encode("gbk") if result == REG_OK and code else body


def text_body(text: str, flags: int, *, v2019: bool) -> bytes:
    """0x8300: flag BYTE (bit 0 urgent, 2 display, 3 TTS), 2019 adds a text-type BYTE (1)."""
    data = text.encode("gbk", errors="replace")
    return bytes((flags, 1)) + data if v2019 else bytes((flags,)) + data


# ---- terminal -> platform ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    province: int
    city: int
    manufacturer: str
    model: str
    device_id: str
    plate_color: int
    plate: str  # the VIN when plate_color is 0

    def as_json(self) -> dict[str, Any]:
        return {
            "province": self.province,
            "city": self.city,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "device_id": self.device_id,
            "plate_color": self.plate_color,
            "plate": self.plate,
        }


def parse_register(body: bytes, *, v2019: bool) -> Registration:
    """0x0100. Field widths: 2019 manufacturer 11, model 30, id 30; 2013 5/20/7; 2011 5/8/7
    (told apart by the body length: a 2011 body cannot hold the 2013 fixed part)."""
    if v2019:
        widths = (11, 30, 30)
    elif len(body) >= 4 + 5 + 20 + 7 + 1:
        widths = (5, 20, 7)
    else:
        widths = (5, 8, 7)
    fixed = 4 + sum(widths) + 1
    if len(body) < fixed:
        raise BodyError(f"register body of {len(body)} bytes, at least {fixed} expected")
    province, city = struct.unpack_from(">HH", body, 0)
    m, mo, d = widths
    off = 4
    manufacturer = gbk(body[off : off + m])
    off += m
    model = gbk(body[off : off + mo])
    off += mo
    device = gbk(body[off : off + d])
    off += d
    plate = gbk(body[off + 1 :])
    return Registration(province, city, manufacturer, model, device, body[off], plate)


def parse_auth(body: bytes, *, v2019: bool) -> str:
    """0x0102: 2013 the whole body is the code; 2019 length BYTE, code, IMEI[15], version[20]."""
    if v2019:
        if not body or len(body) < 1 + body[0]:
            raise BodyError("authentication body shorter than its code length")
        return body[1 : 1 + body[0]].decode("gbk", errors="replace")
    return body.decode("gbk", errors="replace").rstrip("\x00")


def parse_general_reply(body: bytes) -> tuple[int, int, int]:
    """0x0001 -> (reply serial, reply message id, result)."""
    if len(body) != 5:
        raise BodyError(f"general reply of {len(body)} bytes, 5 expected")
    serial, msg_id, result = _REPLY.unpack(body)
    return serial, msg_id, result


def bcd_time(raw: bytes) -> datetime | None:
    """BCD[6] YYMMDDhhmmss in GMT+8 -> aware datetime (UTC); None if it is not a time."""
    t = raw.hex()
    if not t.isdigit():
        return None
    try:
        return datetime(
            2000 + int(t[0:2]), int(t[2:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]),
            int(t[10:12]), tzinfo=CST,
        ).astimezone(UTC)  # fmt: skip
    except ValueError:
        return None


def location_fields(body: bytes, start: int = 0, end: int | None = None) -> dict[str, Any]:
    """A location as the ping contract's field names (what is stored if it is rejected)."""
    end = len(body) if end is None else end
    if end - start < 28:
        raise BodyError(f"location of {end - start} bytes, at least 28 expected")
    alarm, status, lat, lon, alt, speed, direction = _BASIC.unpack_from(body, start)
    ts = bcd_time(body[start + 22 : start + 28])
    out: dict[str, Any] = {
        "ts": ts.isoformat() if ts else "bcd:" + body[start + 22 : start + 28].hex(),
        "lat": (-lat if status & SOUTH else lat) / 1e6,
        "lon": (-lon if status & WEST else lon) / 1e6,
        "speed_kmh": speed / 10,
        "heading_deg": float(direction),
        "alt_m": float(alt),
        "acc": bool(status & ACC_ON),
        "fix": bool(status & POSITIONED),
        "alarm": alarm,
    }
    off = start + 28
    while off + 2 <= end:
        item, n = body[off], body[off + 1]
        data = body[off + 2 : off + 2 + n]
        if len(data) < n:
            break  # a truncated extra item: keep the basic part
        if item == 0x01 and n == 4:
            out["odometer_km"] = _I.unpack(data)[0] / 10
        elif item == 0x31 and n == 1:
            out["sats"] = data[0]
        off += 2 + n
    return out


def location_ping(body: bytes, start: int, end: int, seq: int | None) -> ValidPing | None:
    """The hot path: a location straight to a `ValidPing`, or None when any field is outside
    what the ping contract accepts (the caller then lets the pipeline's `validate` stage
    refuse `location_fields` with the contract's reason). Same ranges as `Ping`."""
    if end - start < 28:
        raise BodyError(f"location of {end - start} bytes, at least 28 expected")
    alarm, status, lat, lon, alt, speed, direction = _BASIC.unpack_from(body, start)
    if lat > 90_000_000 or lon > 180_000_000 or speed > 4000 or direction > 360:
        return None
    ts = bcd_time(body[start + 22 : start + 28])
    if ts is None:
        return None
    odometer: float | None = None
    sats: int | None = None
    off = start + 28
    while off + 2 <= end:
        item, n = body[off], body[off + 1]
        if off + 2 + n > end:
            break
        if item == 0x01 and n == 4:
            odometer = _I.unpack_from(body, off + 2)[0] / 10
        elif item == 0x31 and n == 1:
            sats = body[off + 2]
        off += 2 + n
    if not -1000 <= alt <= 10_000 or (odometer is not None and odometer > 10_000_000):
        return None
    return ValidPing(
        ts,
        (-lat if status & SOUTH else lat) / 1e6,
        (-lon if status & WEST else lon) / 1e6,
        speed / 10,
        float(direction),
        float(alt),
        odometer,
        bool(status & ACC_ON),
        bool(status & POSITIONED),
        sats,
        alarm,
        seq,
    )


def batch_ranges(body: bytes) -> tuple[int, list[tuple[int, int]]]:
    """0x0704: count WORD, type BYTE (0 normal, 1 blind-area backlog), then per item a length
    WORD and a location. Returns (type, [(start, end) of each location])."""
    if len(body) < 3:
        raise BodyError("batch body shorter than its header")
    count, kind = _H.unpack_from(body, 0)[0], body[2]
    off = 3
    out: list[tuple[int, int]] = []
    for _ in range(count):
        if off + 2 > len(body):
            raise BodyError(f"batch says {count} items, holds {len(out)}")
        (n,) = _H.unpack_from(body, off)
        off += 2
        if off + n > len(body) or n < 28:
            raise BodyError(f"batch item {len(out) + 1} of {n} bytes does not fit")
        out.append((off, off + n))
        off += n
    if off != len(body):
        raise BodyError(f"{len(body) - off} bytes after the batch's {count} items")
    return kind, out


# ---- the terminal's side (simulator, benchmarks) --------------------------------------------


def location_body(
    ts: datetime,
    lat: float,
    lon: float,
    *,
    speed_kmh: float = 0.0,
    heading_deg: float = 0.0,
    alt_m: float = 0.0,
    acc: bool = True,
    fix: bool = True,
    alarm: int = 0,
    odometer_km: float | None = None,
    sats: int | None = None,
) -> bytes:
    """A 0x0200 body (time to the second, GMT+8 as the standard has it)."""
    status = (ACC_ON if acc else 0) | (POSITIONED if fix else 0)
    status |= (SOUTH if lat < 0 else 0) | (WEST if lon < 0 else 0)
    local = ts.astimezone(CST)
    out = _BASIC.pack(
        alarm,
        status,
        round(abs(lat) * 1e6),
        round(abs(lon) * 1e6),
        round(alt_m),
        round(speed_kmh * 10),
        round(heading_deg) % 360,
    ) + bytes.fromhex(local.strftime("%y%m%d%H%M%S"))
    if odometer_km is not None:
        out += b"\x01\x04" + _I.pack(round(odometer_km * 10))
    if sats is not None:
        out += bytes((0x31, 1, sats))
    return out


def batch_body(locations: list[bytes], kind: int = 1) -> bytes:
    """A 0x0704 body: kind 0 normal batch, 1 blind-area backlog."""
    return (
        _H.pack(len(locations))
        + bytes((kind,))
        + b"".join(_H.pack(len(loc)) + loc for loc in locations)
    )


def register_body(reg: Registration, *, v2019: bool) -> bytes:
    m, mo, d = (11, 30, 30) if v2019 else (5, 20, 7)

    def fixed(s: str, n: int) -> bytes:
        return s.encode("gbk")[:n].ljust(n, b"\x00")

    return (
        struct.pack(">HH", reg.province, reg.city)
        + fixed(reg.manufacturer, m)
        + fixed(reg.model, mo)
        + fixed(reg.device_id, d)
        + bytes((reg.plate_color,))
        + reg.plate.encode("gbk")
    )


def auth_body(code: str, *, v2019: bool, imei: str = "", software: str = "") -> bytes:
    data = code.encode("gbk")
    if not v2019:
        return data
    return (
        bytes((len(data),))
        + data
        + imei.encode()[:15].ljust(15, b"\x00")
        + (software.encode()[:20].ljust(20, b"\x00"))
    )
