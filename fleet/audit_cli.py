"""`fleet audit ...`: verify the chain against its checkpoints, the anchor worker, the key."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import asyncpg
import typer

from fleet.config import get_settings

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


@audit_app.command("verify")
def audit_verify(
    anchors: Annotated[
        Path | None,
        typer.Option(help="checkpoint file (default: <anchor_dir>/<database>.jsonl)"),
    ] = None,
    chain: Annotated[
        str | None, typer.Option(help="chain name the checkpoints must carry (default: database)")
    ] = None,
    require_anchors: Annotated[
        bool, typer.Option(help="fail when there is no checkpoint to check against")
    ] = False,
) -> None:
    """Recompute the audit chain and hold it against every signed checkpoint; exit 1 on any
    edited, inserted or removed entry (re-hashed edits and a cut tail included)."""
    from fleet import anchors as A

    settings = get_settings()
    chain = chain or settings.db.name
    path = anchors or A.anchor_path(settings.audit, chain)
    checkpoints, unreadable = A.JsonlAnchorLog(path).read()
    keys = A.load_public_keys(settings.audit)
    if checkpoints and not keys:
        _echo("no public key to check the checkpoints with (FLEET_AUDIT__PUBLIC_KEY_FILES)")
        raise typer.Exit(1)

    async def go() -> A.Report:
        conn = await asyncpg.connect(
            settings.db.dsn(), server_settings={"application_name": "audit-verify"}
        )
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await A.verify_report(
                    conn, chain=chain, checkpoints=checkpoints, unreadable=unreadable, keys=keys
                )
        finally:
            await conn.close()

    report = asyncio.run(go())
    for b in report.problems:
        _echo(f"entry {b.id}: {b.problem}")
    last = report.last_checkpoint
    if last is None:
        anchored = f"NOT ANCHORED: no checkpoint in {path}"
    else:
        anchored = (
            f"{report.checkpoints} checkpoints, the last of {last.at} at entry {last.seq}; "
            f"{report.unanchored} entries after it"
        )
    _echo(
        f"audit log: {report.entries} entries (head {report.head_seq}); {anchored}; "
        f"{len(report.problems)} problems"
    )
    failed = bool(report.problems) or (require_anchors and last is None)
    raise typer.Exit(1 if failed else 0)


@audit_app.command("anchor")
def audit_anchor(
    once: Annotated[bool, typer.Option(help="sign the head once and exit")] = False,
) -> None:
    """Worker: every FLEET_AUDIT__ANCHOR_INTERVAL_S, check the newest entries and append a
    signed checkpoint of the chain head to var/audit-anchors/<database>.jsonl."""
    from fleet.anchor_worker import run_worker
    from fleet.logging import configure

    configure()
    settings = get_settings()
    if not settings.audit.signing_key_file.exists():
        _echo(f"no signing key at {settings.audit.signing_key_file}: run `fleet audit keygen`")
        raise typer.Exit(1)

    async def go() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        cp, breaks = await run_worker(settings, stop=stop, once=once)
        for b in breaks:
            _echo(f"entry {b.id}: {b.problem}")
        if cp is not None:
            _echo(f"checkpoint: entry {cp.seq}, head {cp.head[:16]}…, {cp.at}")
        return cp is not None or not once

    raise typer.Exit(0 if asyncio.run(go()) else 1)


@audit_app.command("keygen")
def audit_keygen(
    force: Annotated[bool, typer.Option(help="replace an existing key")] = False,
) -> None:
    """Create the Ed25519 checkpoint signing key (idempotent) and print its public half."""
    from cryptography.hazmat.primitives import serialization

    from fleet.anchors import generate_key, key_id, public_key_path

    path = get_settings().audit.signing_key_file
    pub, made = generate_key(path, force=force)
    _echo(f"{'created' if made else 'kept'} {path} (key id {key_id(pub)}); public key in "
          f"{public_key_path(path)}:")  # fmt: skip
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    typer.echo(pem.decode().strip())
