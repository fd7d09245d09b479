"""The anchor worker: every few minutes, check the newest audit entries and sign the head.

Runs as the runtime role (it only reads `audit_log`) and is the only reader of the signing
key. See fleet/anchors.py for what a checkpoint is and how it is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet import audit
from fleet.anchors import (
    Checkpoint,
    JsonlAnchorLog,
    Sink,
    anchor_path,
    check_since,
    key_id,
    load_signing_key,
    sign,
    signature_problem,
)
from fleet.audit import ChainBreak
from fleet.config import Settings
from fleet.logging import get_logger

log = get_logger("fleet.anchors")


async def sign_head(
    conn: asyncpg.Connection, key: Ed25519PrivateKey, chain: str, last: Checkpoint | None
) -> tuple[Checkpoint | None, list[ChainBreak]]:
    """Check what was written since `last`, then sign the current head; one snapshot.

    Refuses (returns the problems, no checkpoint) when the log no longer extends `last`:
    signing a rewritten head would launder the rewrite.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        breaks = await check_since(conn, last)
        seq, head = await audit.head(conn)
    if breaks:
        return None, breaks
    return sign(key, chain, seq, head, datetime.now(UTC)), []


async def run_worker(
    settings: Settings, *, stop: asyncio.Event, once: bool = False, sinks: list[Sink] | None = None
) -> tuple[Checkpoint | None, list[ChainBreak]]:
    """Every `anchor_interval_s`, sign the chain head and append it to each sink.

    Returns the last round's outcome: its checkpoint, or the problems that refused one.
    """
    cfg = settings.audit
    key = load_signing_key(cfg.signing_key_file)
    chain = settings.db.name
    anchor_log = JsonlAnchorLog(anchor_path(cfg, chain))
    sinks = sinks if sinks is not None else [anchor_log]
    last = anchor_log.last()
    if last is not None and signature_problem(last, {key_id(key.public_key()): key.public_key()}):
        log.error("audit.anchor_last_unverifiable", path=str(anchor_log.path), seq=last.seq)
        last = None
    conn: asyncpg.Connection | None = None
    cp: Checkpoint | None = None
    breaks: list[ChainBreak] = []
    while not stop.is_set():
        cp, breaks = None, []
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(
                    settings.db.dsn(), server_settings={"application_name": "audit-anchor"}
                )
            cp, breaks = await sign_head(conn, key, chain, last)
            if cp is None:
                log.error(
                    "audit.anchor_refused",
                    reason="the log no longer extends the last checkpoint",
                    problems=[f"{b.id}: {b.problem}" for b in breaks[:5]],
                )
            else:
                for sink in sinks:
                    sink.append(cp)
                last = cp
                log.info("audit.anchored", chain=chain, seq=cp.seq, head=cp.head[:16])
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            log.warning("audit.anchor_retry", error=repr(exc)[:200])
            breaks = [ChainBreak(0, f"database unavailable: {exc!r}"[:200])]
            if conn is not None:
                await conn.close(timeout=2)
                conn = None
        if once:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=cfg.anchor_interval_s)
    if conn is not None:
        await conn.close()
    return cp, breaks
