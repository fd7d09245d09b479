"""The JT/T 808 codec against published real frames and an independent encoder.

Real frames: the registration, authentication, heartbeat, location and batch frames of
Traccar's `HuabaoProtocolDecoderTest` (github.com/traccar/traccar,
src/test/java/org/traccar/protocol/HuabaoProtocolDecoderTest.java), used as hex vectors —
real terminals' output, with its quirks (a 2011-layout registration, a location whose
length field and check code are wrong). Built frames: tests/telematics/jt808/frames.py,
written from the standard without the gateway's code.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from telematics.jt808 import messages as M
from telematics.jt808.codec import FrameError, Splitter, build, parse, phone_bcd, xor
from tests.telematics.jt808 import frames as F

# Traccar HuabaoProtocolDecoderTest vectors
REGISTER_2011 = "7E01000021013345678906000F002C012F373031313142534A2D4D3742203030303030303001D4C1423838383838B47E"
REGISTER_2013 = "7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000003233363631303402CBD5424136383630387E"
REGISTER_2013_B = "7e0100002d0141305678720024002c012f373031313142534a2d41362d424400000000000000000000003035363738373201d4c14238383838386d7e"
AUTHENTICATE = "7E0102000E013511221122000661757468656E7469636174696F6E3F7E"
AUTHENTICATE_B = "7E010200100940278494700084323031313131303831313333323139369F7E"
HEARTBEAT = "7e0002000004304832546500b7ca7e"
LOCATION_BAD = "7E02000032013511221122000700000000000C000301578CC006CA3A5C00470000000014072317201501040000000030011631010BD07E"
LOCATION_SOS_WEST = "7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412164952010400000012360a0002341502cb0c20085c107e"
BATCH_BLIND = "7E0704014301356777777707F5000801002600000000000000030159741206CBFD5001720000000116052709062401040000001D03020000002600000000000000030159746606CBFD50016B0000000116052709065301040000001D0302000000260000000000000003015975E406CBFE58013F0000000116052709072701040000001D0302000000260000000000000003015976DE06CBFF10012E0000000116052709075601040000001D0302000000260000000000000003015976BC06CBFED0012D0000000116052709083001040000001D0302000000260000000000000003015976FE06CBFEC001080000000116052709090001040000001D0302000000260000000000000003015976FE06CBFE7800FC0000000116052709093301040000001D0302000000260000000000000003015977A606CBFF3001080000000116052709100201040000001D030200001F7E"


def content(hexframe: str) -> bytes:
    """A published frame as the splitter hands it over: between the flags."""
    (only,) = Splitter().feed(bytes.fromhex(hexframe))
    return only


def test_traccar_registration_frames() -> None:
    h, body = parse(content(REGISTER_2013))
    assert (h.msg_id, h.phone, h.serial, h.version, h.split) == (
        0x0100,
        "013511221122",
        5,
        None,
        False,
    )
    reg = M.parse_register(body, v2019=False)
    assert (reg.manufacturer, reg.model, reg.device_id) == ("70107", "HB-R03GBD", "2366104")
    assert (reg.plate_color, reg.plate) == (2, "苏BA6860")
    h, body = parse(content(REGISTER_2013_B))
    assert M.parse_register(body, v2019=False).plate == "粤B88888"
    # 2011 layout (8-byte model): told apart by the body length
    h, body = parse(content(REGISTER_2011))
    reg = M.parse_register(body, v2019=False)
    assert (h.phone, h.serial) == ("013345678906", 15)
    assert (reg.model, reg.device_id, reg.plate) == ("BSJ-M7B", "0000000", "粤B88888")


def test_traccar_authentication_and_heartbeat_frames() -> None:
    h, body = parse(content(AUTHENTICATE))
    assert (h.msg_id, h.phone, h.serial) == (0x0102, "013511221122", 6)
    assert M.parse_auth(body, v2019=False) == "authentication"
    h, body = parse(content(AUTHENTICATE_B))
    assert M.parse_auth(body, v2019=False) == "2011110811332196"
    h, body = parse(content(HEARTBEAT))
    assert (h.msg_id, h.phone, h.serial, body) == (0x0002, "043048325465", 0xB7, b"")


def test_traccar_location_and_batch_frames() -> None:
    h, body = parse(content(LOCATION_SOS_WEST))
    p = M.location_ping(body, 0, len(body), h.serial)
    assert p is not None
    assert p.alarm == 1  # the emergency bit
    assert (p.lat, p.lon) == (50.871735, -1.255923)  # status bit 3: west longitude
    assert (p.speed_kmh, p.heading_deg, p.alt_m, p.odometer_km, p.fix) == (2.0, 0.0, 0.0, 1.8, True)
    assert p.ts == datetime(2013, 4, 12, 8, 49, 52, tzinfo=UTC)  # 16:49:52 in GMT+8
    h, body = parse(content(BATCH_BLIND))
    kind, ranges = M.batch_ranges(body)
    assert (h.msg_id, kind, len(ranges)) == (0x0704, 1, 8)
    pings = [M.location_ping(body, s, e, None) for s, e in ranges]
    assert all(p is not None for p in pings)
    assert pings[0].ts == datetime(2016, 5, 27, 1, 6, 24, tzinfo=UTC)  # type: ignore[union-attr]
    assert pings[0].lat == 22.639634  # type: ignore[union-attr]


def test_traccar_location_with_wrong_length_and_check_is_refused_with_its_header() -> None:
    with pytest.raises(FrameError) as err:
        parse(content(LOCATION_BAD))
    assert err.value.reason in ("bad_check", "bad_length")
    assert err.value.header is not None and err.value.header.serial == 7  # still answerable


@pytest.mark.parametrize("v2019", [False, True])
def test_build_matches_the_independent_encoder(v2019: bool) -> None:
    rng = random.Random(7)
    for _ in range(300):
        body = bytes(
            rng.choice((0x7E, 0x7D, 0x01, 0x02, rng.randrange(256)))
            for _ in range(rng.randrange(0, 60))
        )
        serial = rng.choice((0x7E7D, 0x7D7E, rng.randrange(65536)))
        phone = rng.choice(
            ("013912345678", "13800138000", "12345678901234567890"[: 20 if v2019 else 12])
        )
        ours = build(
            0x0200, phone_bcd(phone, v2019=v2019), serial, body, version=1 if v2019 else None
        )
        assert ours == F.frame(0x0200, phone, serial, body, v2019=v2019)
        h, got = parse(Splitter().feed(ours)[0])
        assert (h.serial, got, h.version) == (serial, body, 1 if v2019 else None)
        assert h.phone.lstrip("0") == phone.lstrip("0")


def test_split_packets_as_the_independent_encoder_builds_them() -> None:
    body = bytes(range(256)) * 3
    packets = F.split(0x0704, "013912345678", 100, body, 300)
    seen = []
    for raw in Splitter().feed(b"".join(packets)):
        h, part = parse(raw)
        seen.append((h.total, h.index, h.serial, part))
    assert [(t, i, s) for t, i, s, _ in seen] == [(3, 1, 100), (3, 2, 101), (3, 3, 102)]
    assert b"".join(p for *_, p in seen) == body


def test_refusals_of_the_codec() -> None:
    good = F.frame(0x0002, "013912345678", 9)
    assert parse(Splitter().feed(good)[0])[0].serial == 9
    bad_check = F.frame(0x0002, "013912345678", 9, corrupt_check=True)
    with pytest.raises(FrameError, match="bad_check"):
        parse(Splitter().feed(bad_check)[0])
    wrong_length = F.frame(0x0200, "013912345678", 9, b"\x00" * 10, length=28)
    with pytest.raises(FrameError, match="bad_length"):
        parse(Splitter().feed(wrong_length)[0])
    with pytest.raises(FrameError, match="bad_escape"):
        parse(b"\x00\x02\x00\x00\x7d\x05" + b"\x00" * 10)
    with pytest.raises(FrameError, match="too_short"):
        parse(b"\x00\x02\x00")
    with pytest.raises(M.BodyError):
        M.location_ping(b"\x00" * 20, 0, 20, None)
    with pytest.raises(M.BodyError):
        M.batch_ranges(F.word(2) + b"\x01" + F.word(28) + b"\x00" * 28)  # says 2, holds 1


def test_splitter_reassembles_frames_cut_anywhere() -> None:
    when = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    frames = [
        F.frame(0x0200, "013912345678", k, F.location(when, 22.8, 108.3, mileage01=0x007E7D7D))
        for k in range(20)
    ]
    stream = b"".join(frames)
    rng = random.Random(3)
    for _ in range(50):
        s, got, i = Splitter(), [], 0
        while i < len(stream):
            j = min(len(stream), i + rng.randrange(1, 40))
            got.extend(s.feed(stream[i:j]))
            i = j
        assert [parse(g)[0].serial for g in got] == list(range(20))
        assert parse(got[5])[1] == F.location(when, 22.8, 108.3, mileage01=0x007E7D7D)


def test_xor_folds_like_a_byte_loop() -> None:
    rng = random.Random(1)
    for n in range(0, 300):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert xor(data) == F.check_code(data)


def test_location_mapping_of_the_independent_encoder() -> None:
    when = datetime(2026, 1, 1, 16, 30, 5, tzinfo=UTC)  # 2026-01-02 00:30:05 in GMT+8
    body = F.location(when, -33.8688, -151.2093, alarm=0x101, acc=False, fix=False, alt=-12,
                      speed01=1234, direction=359, mileage01=987654, sats=11)  # fmt: skip
    p = M.location_ping(body, 0, len(body), 5)
    assert p is not None
    assert (p.ts, p.lat, p.lon) == (when, -33.8688, -151.2093)
    assert (p.speed_kmh, p.heading_deg, p.alt_m) == (123.4, 359.0, -12.0)
    assert (p.acc, p.fix, p.alarm, p.odometer_km, p.sats, p.seq) == (
        False,
        False,
        0x101,
        98765.4,
        11,
        5,
    )
    # outside the ping contract: the hot path declines, the fields say why
    for bad in (F.location(when, 95.0, 108.0), F.location(when, 22.0, 108.0, speed01=4001)):
        assert M.location_ping(bad, 0, len(bad), None) is None
    assert M.location_fields(F.location(when, 95.0, 108.0))["lat"] == 95.0
