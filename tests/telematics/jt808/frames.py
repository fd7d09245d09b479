"""An independent JT/T 808 encoder and decoder for the tests, written from the standard.

It shares no code with telematics/jt808: if both misread the standard the same way the
published vectors (Traccar's) catch it; otherwise this one catches the gateway. Frame:
0x7E, header, body, XOR check code, 0x7E, with 0x7E -> 0x7D 0x02 and 0x7D -> 0x7D 0x01
inside. Header 2013: id WORD, properties WORD (length bits 0-9, split bit 13), phone BCD[6],
serial WORD [, total WORD, index WORD]; 2019 sets bit 14 and adds version BYTE and BCD[10].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))


def bcd(digits: str, size: int) -> bytes:
    digits = digits.zfill(size * 2)
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, len(digits), 2))


def word(n: int) -> bytes:
    return bytes(((n >> 8) & 0xFF, n & 0xFF))


def dword(n: int) -> bytes:
    return bytes(((n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))


def check_code(data: bytes) -> int:
    c = 0
    for b in data:
        c ^= b
    return c


def escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b == 0x7E:
            out += b"\x7d\x02"
        elif b == 0x7D:
            out += b"\x7d\x01"
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x7D:
            out.append(0x7E if data[i + 1] == 0x02 else 0x7D)
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def frame(
    msg_id: int,
    phone: str,
    serial: int,
    body: bytes = b"",
    *,
    v2019: bool = False,
    packet: tuple[int, int] | None = None,
    corrupt_check: bool = False,
    length: int | None = None,
) -> bytes:
    props = len(body) if length is None else length
    if packet is not None:
        props |= 1 << 13
    head = word(msg_id)
    if v2019:
        head += word(props | 1 << 14) + bytes((1,)) + bcd(phone, 10)
    else:
        head += word(props) + bcd(phone, 6)
    head += word(serial)
    if packet is not None:
        head += word(packet[0]) + word(packet[1])
    content = head + body
    code = check_code(content) ^ (0x55 if corrupt_check else 0)
    return b"\x7e" + escape(content + bytes((code,))) + b"\x7e"


def split(
    msg_id: int, phone: str, first_serial: int, body: bytes, size: int, **kw: object
) -> list[bytes]:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        frame(msg_id, phone, first_serial + k, part, packet=(len(parts), k + 1), **kw)  # type: ignore[arg-type]
        for k, part in enumerate(parts)
    ]


def location(
    when: datetime,
    lat: float,
    lon: float,
    *,
    alarm: int = 0,
    acc: bool = True,
    fix: bool = True,
    alt: int = 50,
    speed01: int = 400,
    direction: int = 90,
    mileage01: int | None = 12345,
    sats: int | None = 9,
) -> bytes:
    status = (1 if acc else 0) | (2 if fix else 0) | (4 if lat < 0 else 0) | (8 if lon < 0 else 0)
    t = when.astimezone(BEIJING)
    stamp = f"{t.year % 100:02d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"
    out = (
        dword(alarm)
        + dword(status)
        + dword(round(abs(lat) * 1_000_000))
        + dword(round(abs(lon) * 1_000_000))
        + word(alt & 0xFFFF)
        + word(speed01)
        + word(direction)
        + bcd(stamp, 6)
    )
    if mileage01 is not None:
        out += bytes((0x01, 4)) + dword(mileage01)
    if sats is not None:
        out += bytes((0x31, 1, sats))
    return out


def batch(locations: list[bytes], kind: int = 1) -> bytes:
    out = word(len(locations)) + bytes((kind,))
    for loc in locations:
        out += word(len(loc)) + loc
    return out


def register_2013(plate: str, device: str = "1234567", color: int = 1) -> bytes:
    return (
        word(45) + word(100) + b"FLEET" + b"JT808-TEST".ljust(20, b"\x00")
        + device.encode().ljust(7, b"\x00") + bytes((color,)) + plate.encode("gbk")
    )  # fmt: skip


def register_2019(plate: str, device: str = "1234567", color: int = 1) -> bytes:
    return (
        word(45) + word(100) + b"FLEET".ljust(11, b"\x00") + b"JT808-TEST".ljust(30, b"\x00")
        + device.encode().ljust(30, b"\x00") + bytes((color,)) + plate.encode("gbk")
    )  # fmt: skip


def auth_2019(code: str) -> bytes:
    c = code.encode("gbk")
    return bytes((len(c),)) + c + b"861234567890123" + b"v1.0".ljust(20, b"\x00")


@dataclass
class Reply:
    msg_id: int
    phone: str
    serial: int
    body: bytes
    v2019: bool

    @property
    def result(self) -> int:  # 0x8001: reply serial WORD, reply id WORD, result BYTE
        return self.body[4]

    @property
    def answers(self) -> tuple[int, int]:  # (serial, message id) it answers
        return (self.body[0] << 8 | self.body[1], self.body[2] << 8 | self.body[3])


def read_frames(stream: bytes) -> tuple[list[Reply], bytes]:
    """Complete frames in a byte stream (and the unfinished rest)."""
    out = []
    while True:
        start = stream.find(b"\x7e")
        if start < 0:
            return out, b""
        end = stream.find(b"\x7e", start + 1)
        if end < 0:
            return out, stream[start:]
        data = unescape(stream[start + 1 : end])
        stream = stream[end + 1 :]
        if not data:
            continue
        assert check_code(data[:-1]) == data[-1], f"bad check code from the gateway: {data.hex()}"
        msg_id, props = data[0] << 8 | data[1], data[2] << 8 | data[3]
        v2019 = bool(props & 1 << 14)
        if v2019:
            phone, serial, body = data[5:15].hex(), data[15] << 8 | data[16], data[17:-1]
        else:
            phone, serial, body = data[4:10].hex(), data[10] << 8 | data[11], data[12:-1]
        assert len(body) == props & 0x3FF
        out.append(Reply(msg_id, phone, serial, body, v2019))
