"""Points of every connection committed together, then each message answered.

A batch closes at `batch_max` points or `batch_wait_ms` after its first point (the MQTT
ingest's settings and defaults: 2,000 / 200 ms), always on message boundaries, so a
message's points commit in one transaction. It then runs the pipeline's checks (validate ->
identify -> screen -> flag), is stored, and only then is every message in it answered with
0x8001 result 0 — one write per connection. As in the MQTT ingest, the next batch is
checked while the previous one commits, one commit in flight, so answers go out in order.
Points waiting above `pending_max` pause reading on the connections that send them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING

from telematics.ingest.commit import Committer
from telematics.ingest.pipeline import Batch, Context, Item, check
from telematics.ingest.schemas import IngestSettings

if TYPE_CHECKING:
    from telematics.jt808.session import Ack, Connection

Entry = tuple["Connection", list[Item], list["Ack"]]


class Batcher:
    def __init__(
        self,
        committer: Committer,
        ctx: Context,
        ingest: IngestSettings,
        *,
        pending_max: int,
        stats: Counter[str],
    ) -> None:
        self.committer = committer
        self.ctx = ctx
        self.batch_max = ingest.batch_max
        self.wait_s = ingest.batch_wait_ms / 1000
        self.pending_max = pending_max
        self.stats = stats
        self.entries: list[Entry] = []
        self.pending = 0  # points in `entries`
        self.first_at = 0.0
        self._any = asyncio.Event()
        self._full = asyncio.Event()
        self.paused: set[Connection] = set()

    def submit(self, conn: Connection, items: list[Item], acks: list[Ack]) -> None:
        if not self.entries:
            self.first_at = time.monotonic()
            self._any.set()
        self.entries.append((conn, items, acks))
        self.pending += len(items)
        if self.pending >= self.batch_max:
            self._full.set()
        if self.pending >= self.pending_max:
            conn.pause_reading()
            self.paused.add(conn)

    async def _take(self, idle_s: float) -> list[Entry]:
        if not self.entries:
            self._any.clear()
            try:
                await asyncio.wait_for(self._any.wait(), idle_s)
            except TimeoutError:
                return []
        deadline = self.first_at + self.wait_s
        while self.pending < self.batch_max:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._full.clear()
            try:
                await asyncio.wait_for(self._full.wait(), left)
            except TimeoutError:
                break
        n, k = 0, 0
        for k, (_, items, _) in enumerate(self.entries, 1):  # noqa: B007
            n += len(items)
            if n >= self.batch_max:
                break
        taken, self.entries = self.entries[:k], self.entries[k:]
        self.pending -= n
        if self.entries:
            self.first_at = time.monotonic()
        if self.paused and self.pending < self.pending_max // 2:
            for conn in self.paused:
                conn.resume()
            self.paused.clear()
        return taken

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set and everything submitted is committed and answered."""
        committing: asyncio.Task[None] | None = None
        try:
            while not (stopping.is_set() and not self.entries):
                entries = await self._take(0.2 if stopping.is_set() else 0.5)
                if entries:
                    items = [i for _, its, _ in entries for i in its]
                    batch = await self.committer.prepare(partial(self._check, items))
                    batch.stats["messages"] += len(entries)
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self._commit(batch, entries))
                elif committing is not None and committing.done():
                    await committing
                    committing = None
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                committing.cancel()

    async def _check(self, items: list[Item]) -> Batch:
        batch = Batch([], items=list(items))
        batch.stats["pings"] = len(items)
        return await check(batch, self.ctx)

    async def _commit(self, batch: Batch, entries: list[Entry]) -> None:
        await self.committer.store(batch)
        by_conn: dict[Connection, list[Ack]] = {}
        answered = 0
        for conn, _, acks in entries:
            if acks:
                by_conn.setdefault(conn, []).extend(acks)
        for conn, acks in by_conn.items():
            conn.ack_frames(acks)
            answered += len(acks)
        batch.stats["answered"] += answered
        await self.committer.after(batch)
