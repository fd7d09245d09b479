"""One derive cycle: status, trips/stops, daily mileage and supervision alerts from positions.

It runs beside the ingest, never on its hot path. Each cycle, in one transaction:

1. reads the positions received since its cursor (``received_at`` watermark, BRIN-indexed;
   ``ts`` floored at ``lookback_h`` so only recent partitions are touched), at most
   ``window_s`` of arrivals and none younger than ``settle_s`` (so batches still being
   committed are not skipped), with each point's geofence context computed in SQL;
2. per vehicle, resumes its stored state (segmenter + open rule episodes) and feeds the new
   points in ts order; a vehicle that received pings older than its state (buffered uploads
   after a coverage gap) is re-derived from the segment before them instead — the same code,
   run from a clean state, so re-processing is idempotent;
3. writes segments (upsert on (vehicle, started_at)), mileage, states, alerts (upsert on
   dedup_key) and status changes, runs the fleet-wide checks (offline, offline in service,
   not at the depot), advances the cursor;
4. after commit, the worker (``telematics.derive.worker``) publishes the status and alert
   events the cycle collected on the bus.

The steps have a module each: ``reading`` (1), ``vehicle`` (2, with ``segment`` and the
rules of ``telematics.rules.catalog``), ``writing``, ``mileage`` and ``status`` (3); this
module puts them in order.

Several workers can split the fleet with ``--shard i/n`` (vehicle_id % n = i, one cursor
per shard); within a shard an advisory lock keeps a single runner.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from fleet.holidays import calendar
from telematics.derive import mileage, reading, status, writing
from telematics.derive.report import CycleReport, alert_events
from telematics.derive.segment import Segment, SegState
from telematics.derive.vehicle import VehicleFeed, state_row
from telematics.rules.base import AlertDraft
from telematics.rules.catalog import FLEET_CHECKS
from telematics.rules.thresholds import DeriveSettings


class Deriver:
    def __init__(self, cfg: DeriveSettings, *, shard: tuple[int, int] = (0, 1)) -> None:
        self.cfg = cfg
        self.shard = shard
        self.vehicles = VehicleFeed(cfg)
        self.tz = self.vehicles.tz

    @property
    def cursor_name(self) -> str:
        i, n = self.shard
        return "received_at" if n == 1 else f"received_at:{i}/{n}"

    async def cycle(self, conn: asyncpg.Connection, *, now: datetime | None = None) -> CycleReport:
        """One cycle in one transaction; events are returned, to publish after commit."""
        now = now or datetime.now(UTC)
        rep = CycleReport()
        async with conn.transaction():
            if not await reading.lock_shard(conn, self.shard):
                rep.ran = False
                return rep
            # the rules' working calendar: one single-row read, a reload only after a change
            await calendar.refresh(conn)
            floor = now - timedelta(hours=self.cfg.lookback_h)
            cursor = await reading.read_cursor(conn, self.cursor_name) or floor
            upto = min(
                now - timedelta(seconds=self.cfg.settle_s),
                cursor + timedelta(seconds=self.cfg.window_s),
            )
            backlog = await reading.take_backlog(conn, self.shard, now)
            rep.backlog = len(backlog)
            if upto > cursor:
                rows = await reading.new_points(conn, self.shard, (cursor, upto), (floor, now))
                await self._process(conn, rows, now, rep, backlog)
                await reading.save_cursor(conn, self.cursor_name, upto)
                rep.cursor = upto
            else:
                await self._process(conn, [], now, rep, backlog)
                rep.cursor = cursor
            await status.offline(conn, now, self.cfg.offline_after_s, self.shard, rep)
            for check in FLEET_CHECKS:
                alert_events(await check(conn, now, self.cfg, self.shard), rep)
        return rep

    async def _process(
        self,
        conn: asyncpg.Connection,
        rows: list[asyncpg.Record],
        now: datetime,
        rep: CycleReport,
        backlog: dict[int, datetime] | None = None,
    ) -> None:
        by_vehicle: dict[int, list[asyncpg.Record]] = defaultdict(list)
        for r in rows:
            by_vehicle[r["vehicle_id"]].append(r)
        rep.points = len(rows)
        rep.vehicles = len(by_vehicle)
        # Queued vehicles are re-derived from their earliest queued point (which covers any
        # of their rows read by the cursor in this cycle too).
        redo: dict[int, datetime] = dict(backlog or {})
        if not by_vehicle and not redo:
            return
        states = await reading.load_states(conn, [v for v in by_vehicle if v not in redo])
        segments: list[tuple[int, Segment]] = []
        drafts: list[AlertDraft] = []
        new_states: list[dict[str, Any]] = []
        deltas: mileage.Deltas = {}
        for vid, vrows in by_vehicle.items():
            if vid in redo:
                redo[vid] = min(redo[vid], vrows[0]["ts"])
                continue
            last_ts, raw = states.get(vid, (None, {}))
            if last_ts is not None and vrows[0]["ts"] <= last_ts:
                redo[vid] = vrows[0]["ts"]
                continue
            seg_state = SegState.from_json(raw.get("seg"))
            episodes: dict[str, Any] = raw.get("episodes", {})
            segs, dr = self.vehicles.feed(vid, seg_state, episodes, vrows, deltas)
            segments.extend((vid, s) for s in segs)
            drafts.extend(dr)
            new_states.append(state_row(vid, seg_state, episodes, vrows[-1]["ts"]))
        for vid, since in redo.items():
            segs, dr, st = await self.reprocess_vehicle(conn, vid, since, now, write=False)
            segments.extend((vid, s) for s in segs)
            drafts.extend(dr)
            if st is not None:
                new_states.append(st)
        rep.reprocessed = len(redo)
        rep.segments = len(segments)
        await writing.write_segments(conn, segments)
        await mileage.write_deltas(conn, deltas)
        await writing.write_states(conn, new_states)
        await writing.write_alerts(conn, drafts, rep)
        await status.moving_parked(conn, new_states, now, self.cfg.offline_after_s, rep)

    async def reprocess_vehicle(
        self,
        conn: asyncpg.Connection,
        vid: int,
        since: datetime,
        until: datetime,
        *,
        write: bool = True,
    ) -> tuple[list[Segment], list[AlertDraft], dict[str, Any] | None]:
        """Re-derive a vehicle from the segment that contains ``since`` up to ``until``.

        Deletes the vehicle's trips and stops from that segment's start, runs the segmenter
        and the point rules from a clean state over the stored positions, and recomputes the
        affected days' mileage with PostGIS. Alerts are upserted by dedup key, so episodes that
        were already reported are not reported twice.
        """
        # Start from a stop: a stop begins on a standing point, exactly where a clean state
        # begins too, so the re-run reproduces the boundaries before the late points.
        anchor = await conn.fetchval(
            "SELECT coalesce((SELECT max(started_at) FROM vehicle_stops"
            " WHERE vehicle_id = $1 AND started_at <= $2),"
            " least((SELECT min(started_at) FROM vehicle_trips WHERE vehicle_id = $1), $2))",
            vid,
            since,
        )
        await conn.execute(
            "DELETE FROM vehicle_trips WHERE vehicle_id = $1 AND started_at >= $2", vid, anchor
        )
        await conn.execute(
            "DELETE FROM vehicle_stops WHERE vehicle_id = $1 AND started_at >= $2", vid, anchor
        )
        rows = await reading.vehicle_points(conn, vid, anchor, until)
        seg_state = SegState()
        episodes: dict[str, Any] = {}
        segs, drafts = self.vehicles.feed(vid, seg_state, episodes, rows, None)
        first_day = anchor.astimezone(self.tz).date()
        last_day = (rows[-1]["ts"] if rows else until).astimezone(self.tz).date()
        await self.recompute_mileage(conn, vid, first_day, last_day)
        state = state_row(vid, seg_state, episodes, rows[-1]["ts"]) if rows else None
        if write:
            await writing.write_segments(conn, [(vid, s) for s in segs])
            if state is not None:
                await writing.write_states(conn, [state])
            await writing.write_alerts(conn, drafts, CycleReport())
        return segs, drafts, state

    async def recompute_mileage(
        self, conn: asyncpg.Connection, vid: int, first: date, last: date
    ) -> None:
        """Exact daily mileage from stored positions: odometer span, else ST_Length."""
        await mileage.recompute(conn, vid, first, last, self.cfg.timezone)
