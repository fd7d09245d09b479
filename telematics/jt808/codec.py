"""JT/T 808 framing: 0x7E flags, 0x7D escapes, the XOR check code and the message header.

A frame on the wire is ``7E <header> <body> <check> 7E`` with every 0x7E inside escaped as
``7D 02`` and every 0x7D as ``7D 01``. The check code is the XOR of header and body. The
header is, in 2013 (and 2011): message id WORD, body properties WORD, phone BCD[6], serial
WORD, and when the body properties' bit 13 says the message is split, packet total WORD and
packet index WORD (1-based). 2019 sets bit 14 of the body properties (version flag) and adds
a protocol-version BYTE before a BCD[10] phone. The body length (bits 0-9) is at most 1023
bytes; bits 10-12 name an encryption (we support none). Both versions share one port: the
version flag decides per frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

FLAG = b"\x7e"
MAX_BODY = 0x3FF
SPLIT = 1 << 13
VERSION_FLAG = 1 << 14
ENCRYPTION = 0x1C00

_HH = struct.Struct(">HH")
_H = struct.Struct(">H")


class FrameError(ValueError):
    """A frame that cannot be used; `header` is set when it was readable (to answer it)."""

    def __init__(self, reason: str, header: Header | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.header = header


@dataclass(slots=True)
class Header:
    msg_id: int
    props: int
    phone_raw: bytes  # BCD as received (6 bytes in 2013, 10 in 2019): echoed in replies
    serial: int
    version: int | None = None  # the 2019 protocol-version byte; None for 2013/2011
    total: int = 0  # split messages: number of packets and this packet's index (1-based)
    index: int = 0

    @property
    def phone(self) -> str:
        return self.phone_raw.hex()

    @property
    def split(self) -> bool:
        return bool(self.props & SPLIT)


def xor(data: bytes | bytearray | memoryview) -> int:
    """XOR of all bytes, folded on a big integer (one C call per halving, not per byte)."""
    n = len(data)
    if n == 0:
        return 0
    x = int.from_bytes(data, "little")
    while n > 1:
        half = (n + 1) >> 1
        x = (x & ((1 << (half << 3)) - 1)) ^ (x >> (half << 3))
        n = half
    return x


def escape(data: bytes) -> bytes:
    if b"\x7d" in data:
        data = data.replace(b"\x7d", b"\x7d\x01")
    if b"\x7e" in data:
        data = data.replace(b"\x7e", b"\x7d\x02")
    return data


def unescape(data: bytes) -> bytes:
    """Undo the escapes; raises FrameError for a 0x7D not followed by 0x01 or 0x02."""
    if b"\x7d" not in data:
        return data
    if data.count(b"\x7d") != data.count(b"\x7d\x01") + data.count(b"\x7d\x02"):
        raise FrameError("bad_escape")
    # 7D02 first: a 7D that is data was escaped to 7D01, so no 7D02 can straddle it.
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def parse(frame: bytes) -> tuple[Header, bytes]:
    """One frame's content (between the flags, still escaped) -> header and body.

    Raises FrameError: `bad_escape`, `too_short`, `bad_phone`, `bad_check`, `bad_length`.
    The header is attached when it could be read, so the frame can still be answered.
    """
    data = unescape(frame)
    n = len(data)
    if n < 13:
        raise FrameError("too_short")
    msg_id, props = _HH.unpack_from(data, 0)
    if props & VERSION_FLAG:
        if n < 18:
            raise FrameError("too_short")
        version: int | None = data[4]
        phone = data[5:15]
        (serial,) = _H.unpack_from(data, 15)
        off = 17
    else:
        version = None
        phone = data[4:10]
        (serial,) = _H.unpack_from(data, 10)
        off = 12
    header = Header(msg_id, props, phone, serial, version)
    if props & SPLIT:
        if n < off + 5:
            raise FrameError("too_short", header)
        header.total, header.index = _HH.unpack_from(data, off)
        off += 4
    if not phone.hex().isdigit():
        raise FrameError("bad_phone", header)
    if xor(data):  # the check byte XORs the rest to zero
        raise FrameError("bad_check", header)
    body = data[off:-1]
    if len(body) != props & MAX_BODY:
        raise FrameError("bad_length", header)
    if header.split and not 1 <= header.index <= header.total:
        raise FrameError("bad_packet_index", header)
    return header, body


def phone_bcd(phone: str, *, v2019: bool) -> bytes:
    """A SIM number as the header's BCD (left-padded with zeros)."""
    return bytes.fromhex(phone.rjust(20 if v2019 else 12, "0"))


def build(
    msg_id: int,
    phone_raw: bytes,
    serial: int,
    body: bytes = b"",
    *,
    version: int | None = None,
    total: int = 0,
    index: int = 0,
) -> bytes:
    """A complete frame (flags, escapes, check code) ready for the wire."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes: split it (max {MAX_BODY})")
    props = len(body)
    if total:
        props |= SPLIT
    if version is not None:
        props |= VERSION_FLAG
        head = _HH.pack(msg_id, props) + bytes((version,)) + phone_raw + _H.pack(serial & 0xFFFF)
    else:
        head = _HH.pack(msg_id, props) + phone_raw + _H.pack(serial & 0xFFFF)
    if total:
        head += _HH.pack(total, index)
    content = head + body
    return b"\x7e" + escape(content + bytes((xor(content),))) + b"\x7e"


class Splitter:
    """A TCP byte stream -> frame contents (still escaped, without the flags).

    Whatever follows the last flag waits for the next read. Bytes between a closing and an
    opening flag (line noise) come out as a short "frame" that `parse` refuses.
    """

    __slots__ = ("_rest",)
    MAX_PENDING = 4096  # the longest escaped frame is ~2,090 bytes

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self._rest:
            data = self._rest + data
        parts = data.split(b"\x7e")
        self._rest = parts.pop()
        if len(self._rest) > self.MAX_PENDING:
            raise FrameError("frame_too_long")
        return [p for p in parts if p]
