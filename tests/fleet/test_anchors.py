"""Signed checkpoints catch what the hash chain alone cannot (issue 18, item 7).

The three tamperings found on a copy of the database — edit entry 5 and re-hash the rest,
delete the newest 10 entries, delete entries 10–20 and renumber — each done here on a copy
(CREATE DATABASE … TEMPLATE) as the cluster superuser, i.e. an attacker with every right in
PostgreSQL but not the signing key. Each passes the chain check alone (the old `fleet audit
verify`) and fails against the checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet import anchors as A
from fleet import audit
from fleet.anchor_worker import run_worker, sign_head
from fleet.config import ROOT, Settings
from fleet.db import drop_database, recreate_database
from tests.conftest import prepare_database


async def _write_entries(settings: Settings, n: int) -> None:
    """n committed entries, written as the application writes them (runtime role)."""
    conn = await asyncpg.connect(settings.db.dsn())
    try:
        for i in range(n):
            async with conn.transaction():
                await audit.record(
                    conn, audit.Actor("clerk", 7), "thing.change", "thing", i,
                    from_state="a", to_state="b", reason=f"step {i}", data={"i": i},
                )  # fmt: skip
    finally:
        await conn.close()


async def _anchor_once(settings: Settings) -> A.Checkpoint:
    cp, breaks = await run_worker(settings, stop=asyncio.Event(), once=True)
    assert breaks == [] and cp is not None
    return cp


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[Settings]:
    """A database with 60 entries, checkpointed at entry 40 and at entry 60."""
    tmp = tmp_path_factory.mktemp("anchors")
    s = prepare_database(f"{settings.db.name}_anchor", seeded=False)
    s.audit.signing_key_file = tmp / "keys" / "signing.pem"
    s.audit.anchor_dir = tmp / "anchors"
    A.generate_key(s.audit.signing_key_file)

    async def build() -> None:
        await _write_entries(s, 40)
        assert (await _anchor_once(s)).seq == 40
        await _write_entries(s, 20)
        assert (await _anchor_once(s)).seq == 60

    asyncio.run(build())
    yield s
    asyncio.run(drop_database(s.db.name))


def _copy(anchored: Settings, suffix: str) -> Settings:
    """A copy of the anchored database (its own name, the same chain and checkpoints)."""
    copy = anchored.model_copy(deep=True)
    copy.db.name = f"{anchored.db.name}_{suffix}"
    asyncio.run(recreate_database(copy.db.name, anchored.db, template=anchored.db.name))
    return copy


REHASH_FROM = """
DO $$
DECLARE e audit_log; prev bytea;
BEGIN
    SELECT hash INTO prev FROM audit_log WHERE id = {start} - 1;
    FOR e IN SELECT * FROM audit_log WHERE id >= {start} ORDER BY id LOOP
        UPDATE audit_log SET prev_hash = prev, hash = audit_entry_hash(prev, e) WHERE id = e.id;
        prev := audit_entry_hash(prev, e);
    END LOOP;
END $$;
"""

TAMPERINGS = {
    # Edit entry 5 and re-hash every entry after it.
    "rehash": "UPDATE audit_log SET reason = 'nothing happened' WHERE id = 5;"
    + REHASH_FROM.format(start=5),
    # Delete the newest 10 entries (a consistent, shorter chain).
    "truncate": "DELETE FROM audit_log WHERE id > 50;",
    # Delete entries 10–20, renumber the rest down and re-hash from 10.
    "renumber": "DELETE FROM audit_log WHERE id BETWEEN 10 AND 20;"
    " UPDATE audit_log SET id = id + 1000000 WHERE id > 20;"
    " UPDATE audit_log SET id = id - 1000011 WHERE id > 1000000;" + REHASH_FROM.format(start=10),
}
EXPECTED = {
    "rehash": [(40, "differs"), (60, "differs")],
    "truncate": [(60, "gone")],
    "renumber": [(40, "differs"), (60, "gone")],
}


async def _tamper(copy: Settings, sql: str) -> None:
    conn = await asyncpg.connect(copy.db.owner().dsn())  # the superuser, not the app
    try:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        await conn.execute(sql)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
    finally:
        await conn.close()


def _cli_verify(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FLEET_DB__NAME": s.db.name,
        "FLEET_AUDIT__SIGNING_KEY_FILE": str(s.audit.signing_key_file),
        "FLEET_AUDIT__ANCHOR_DIR": str(s.audit.anchor_dir),
    }
    fleet = str(Path(sys.executable).with_name("fleet"))
    return subprocess.run(
        [fleet, "audit", "verify", *args], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_untampered_log_verifies_against_its_checkpoints(anchored: Settings) -> None:
    r = _cli_verify(anchored, "--require-anchors")
    assert r.returncode == 0, r.stderr
    assert "60 entries (head 60); 2 checkpoints, the last of" in r.stderr
    assert "0 entries after it; 0 problems" in r.stderr


@pytest.mark.parametrize("kind", list(TAMPERINGS))
def test_tampering_passes_the_chain_but_not_the_checkpoints(anchored: Settings, kind: str) -> None:
    copy = _copy(anchored, kind)
    try:
        asyncio.run(_tamper(copy, TAMPERINGS[kind]))

        async def check() -> tuple[list[audit.ChainBreak], A.Report]:
            conn = await asyncpg.connect(copy.db.dsn())
            try:
                chain_only = await audit.verify(conn)
                cps, bad = A.JsonlAnchorLog(A.anchor_path(copy.audit, anchored.db.name)).read()
                assert len(cps) == 2 and bad == []
                report = await A.verify_report(
                    conn, chain=anchored.db.name, checkpoints=cps,
                    keys=A.load_public_keys(copy.audit),
                )  # fmt: skip
                return chain_only, report
            finally:
                await conn.close()

        chain_only, report = asyncio.run(check())
        # Before: the chain alone is consistent, so the old verify passed.
        assert chain_only == []
        # Now: every checkpointed position that changed or vanished is reported.
        found = [(b.id, b.problem.split(" ")[0].rstrip(":")) for b in report.problems]
        assert found == EXPECTED[kind], report.problems

        # The same through the command line: exit 0 without the checkpoints (the old
        # behaviour), exit 1 with them.
        anchors = str(A.anchor_path(copy.audit, anchored.db.name))
        old = _cli_verify(copy, "--anchors", str(copy.audit.anchor_dir / "none.jsonl"))
        assert old.returncode == 0 and "0 problems" in old.stderr, old.stderr
        new = _cli_verify(copy, "--anchors", anchors, "--chain", anchored.db.name)
        assert new.returncode == 1, new.stderr
        assert f"{len(EXPECTED[kind])} problems" in new.stderr

        # The anchor worker, continuing the original's checkpoints on the copy, refuses to
        # sign the rewritten head (signing it would launder the rewrite).
        cp, breaks = asyncio.run(_sign_round(copy, anchored.db.name))
        assert cp is None and breaks
    finally:
        asyncio.run(drop_database(copy.db.name))


async def _sign_round(
    s: Settings, chain: str
) -> tuple[A.Checkpoint | None, list[audit.ChainBreak]]:
    """One round of the anchor worker on `s`'s database, continuing `chain`'s checkpoints."""
    key = A.load_signing_key(s.audit.signing_key_file)
    last = A.JsonlAnchorLog(A.anchor_path(s.audit, chain)).last()
    conn = await asyncpg.connect(s.db.dsn())
    try:
        return await sign_head(conn, key, chain, last)
    finally:
        await conn.close()


def test_forged_or_foreign_checkpoints_are_problems(anchored: Settings) -> None:
    """Without the key an attacker can neither edit a checkpoint nor add one."""
    cps, _ = A.JsonlAnchorLog(A.anchor_path(anchored.audit, anchored.db.name)).read()
    last = cps[-1]
    edited = A.Checkpoint(**{**last.to_dict(), "seq": 50})
    other = Ed25519PrivateKey.generate()
    forged = A.sign(other, last.chain, 60, bytes(32), datetime.now(UTC))
    foreign = A.sign(
        A.load_signing_key(anchored.audit.signing_key_file), "another_db", 1, bytes(32),
        datetime.now(UTC),
    )  # fmt: skip
    keys = A.load_public_keys(anchored.audit)
    assert A.signature_problem(last, keys) is None
    assert A.signature_problem(edited, keys) == "bad signature"
    assert (A.signature_problem(forged, keys) or "").startswith("signed with an unknown key")

    async def check() -> A.Report:
        conn = await asyncpg.connect(anchored.db.dsn())
        try:
            return await A.verify_report(
                conn, chain=anchored.db.name, checkpoints=[*cps, cps[0], edited, forged, foreign],
                unreadable=["line 9: not a version 1 checkpoint"], keys=keys,
            )  # fmt: skip
        finally:
            await conn.close()

    problems = [b.problem for b in asyncio.run(check()).problems]
    assert any("out of order" in p for p in problems)  # seq 40 again after seq 60
    assert any("bad signature" in p for p in problems)
    assert any("unknown key" in p for p in problems)
    assert any("belongs to chain 'another_db'" in p for p in problems)
    assert any(p.startswith("anchor line 9") for p in problems)


def test_anchor_file_is_appended_and_read_back(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    log = A.JsonlAnchorLog(tmp_path / "a" / "chain.jsonl")
    assert log.last() is None and log.read() == ([], [])
    first = A.sign(key, "chain", 1, bytes(32), datetime(2026, 1, 1, tzinfo=UTC))
    second = A.sign(key, "chain", 2, bytes(range(32)), datetime(2026, 1, 1, 0, 2, tzinfo=UTC))
    log.append(first)
    log.append(second)
    with log.path.open("ab") as f:
        f.write(b"{not json\n")
    cps, bad = log.read()
    assert cps == [first, second] and bad and bad[0].startswith("line 3")
    assert log.last() == second
    line = orjson.loads(log.path.read_bytes().splitlines()[0])
    assert set(line) == {"v", "chain", "seq", "head", "at", "key", "sig"}
    assert line["at"] == "2026-01-01T00:00:00.000000Z"
    # The upward feed can carry a checkpoint as a plain dict and get it back intact.
    assert A.Checkpoint.from_dict(second.to_dict()) == second


def test_keygen_is_idempotent_and_private(tmp_path: Path) -> None:
    path = tmp_path / "k" / "signing.pem"
    pub, made = A.generate_key(path)
    again, made_again = A.generate_key(path)
    assert made and not made_again and A.key_id(pub) == A.key_id(again)
    assert path.stat().st_mode & 0o777 == 0o600
    assert A.public_key_path(path).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
