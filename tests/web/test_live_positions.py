"""Which bus positions count as live (web.live_positions): pure, no server."""

from __future__ import annotations

from web.live_positions import LivePositions, ping_epoch


def item(vid: int, ts: str) -> dict[str, object]:
    return {"vehicle_id": vid, "ts": ts}


def test_only_the_newest_item_of_a_vehicle_and_only_if_newer() -> None:
    live = LivePositions()
    live.seed([(1, ping_epoch("2026-12-03T10:00:00Z") or 0.0)])
    # a buffered upload (older than the live position, any order) and one live ping
    got = live.newer(
        [
            item(1, "2026-12-03T08:00:10Z"),
            item(1, "2026-12-03T10:00:05Z"),
            item(1, "2026-12-03T08:00:00Z"),
            item(2, "2026-12-03T09:00:00+08:00"),
            item(2, "2026-12-03T09:00:01+08:00"),
        ]
    )
    assert {v: i["ts"] for v, (_, i) in got.items()} == {
        1: "2026-12-03T10:00:05Z",
        2: "2026-12-03T09:00:01+08:00",
    }
    # the same ping again, or an older one: nothing
    assert live.newer([item(1, "2026-12-03T10:00:05Z"), item(1, "2026-12-03T10:00:04.9Z")]) == {}
    # compared as times, not strings ("…05Z" > "…05.5Z" as text)
    assert set(live.newer([item(1, "2026-12-03T10:00:05.5Z")])) == {1}
    # unreadable items are skipped, not fatal
    assert live.newer([item(3, "yesterday"), {"ts": "2026-12-03T10:00:00Z"}, "x"]) == {}
