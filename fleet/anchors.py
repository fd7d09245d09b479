"""Signed checkpoints of the audit chain's head, kept where the database cannot reach.

The chain in `audit_log` is computed in the database, so on its own it only shows edits
that were not re-hashed: a DB superuser can rewrite entry 5 and re-hash the rest, or delete
the newest entries, and the chain still adds up. A checkpoint — (chain, seq, head hash,
time) signed with an Ed25519 key that lives outside the database — pins the log as it was:
`verify_report` then finds any entry at a checkpointed position whose hash changed, and any
checkpointed position that no longer exists (a cut tail, or entries deleted and renumbered).
Entries newer than the last checkpoint are covered from the next one on, so the anchoring
interval (FLEET_AUDIT__ANCHOR_INTERVAL_S) is the window an attacker has.

Where checkpoints go is a `Sink`: in the demo an append-only JSON-lines file per chain under
`var/audit-anchors/` (opened O_APPEND, fsync'd); in production WORM object storage. The
upward data feed (issue 14) can carry `Checkpoint.to_dict()` of the latest checkpoint (or of
`fleet.anchor_worker.sign_head`) in its manifests, and anything carrying checkpoints can be
checked with `verify_report(..., checkpoints=...)`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fleet import audit
from fleet.audit import ChainBreak
from fleet.config import AuditSettings

# Domain separation: a signature over a checkpoint can never be mistaken for anything else.
_DOMAIN = "fleet-audit-checkpoint/v1"


@dataclass(frozen=True)
class Checkpoint:
    """The chain `chain` had `seq` entries, the newest hashing to `head` (hex), at `at`."""

    chain: str
    seq: int
    head: str
    at: str  # RFC 3339, UTC, microseconds: 2026-12-03T01:02:03.456789Z
    key: str  # key id: the first 16 hex digits of sha256(raw public key)
    sig: str  # base64 Ed25519 signature of message()
    v: int = 1

    def message(self) -> bytes:
        return f"{_DOMAIN}\n{self.chain}\n{self.seq}\n{self.head}\n{self.at}".encode()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Checkpoint:
        """Parse one record; ValueError names what is wrong."""
        if not isinstance(d, dict) or d.get("v") != 1:
            raise ValueError("not a version 1 checkpoint")
        kinds = {"chain": str, "seq": int, "head": str, "at": str, "key": str, "sig": str}
        for name, kind in kinds.items():
            if not isinstance(d.get(name), kind) or isinstance(d.get(name), bool):
                raise ValueError(f"field {name} missing or not a {kind.__name__}")
        if d["seq"] < 0 or not re.fullmatch(r"(?:[0-9a-f]{64})?", d["head"]):
            raise ValueError("seq or head out of range")
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["at"]):
            raise ValueError("at is not an RFC 3339 UTC time with microseconds")
        return cls(**{k: d[k] for k in (*kinds, "v")})

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.at)


def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def generate_key(path: Path, *, force: bool = False) -> tuple[Ed25519PublicKey, bool]:
    """Create the signing key (PKCS#8 PEM, mode 0600) and its public half (`<path>.pub`).

    Idempotent: an existing key is kept (returns it and False) unless `force`.
    """
    if path.exists() and not force:
        return load_signing_key(path).public_key(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    pub = key.public_key()
    public_key_path(path).write_bytes(
        pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pub, True


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_keys(cfg: AuditSettings) -> dict[str, Ed25519PublicKey]:
    """The keys checkpoints may be signed with, by key id (configured files, else the
    signing key's public half)."""
    files = list(cfg.public_key_files) or [public_key_path(cfg.signing_key_file)]
    keys: dict[str, Ed25519PublicKey] = {}
    for f in files:
        if not f.exists():
            continue
        pub = serialization.load_pem_public_key(f.read_bytes())
        if not isinstance(pub, Ed25519PublicKey):
            raise ValueError(f"{f} is not an Ed25519 public key")
        keys[key_id(pub)] = pub
    return keys


def sign(
    key: Ed25519PrivateKey, chain: str, seq: int, head: bytes | None, at: datetime
) -> Checkpoint:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    unsigned = Checkpoint(
        chain, seq, head.hex() if head else "", stamp, key_id(key.public_key()), ""
    )
    sig = base64.b64encode(key.sign(unsigned.message())).decode()
    return Checkpoint(**{**unsigned.to_dict(), "sig": sig})


def signature_problem(cp: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> str | None:
    pub = keys.get(cp.key)
    if pub is None:
        return f"signed with an unknown key {cp.key}"
    try:
        pub.verify(base64.b64decode(cp.sig, validate=True), cp.message())
    except (InvalidSignature, ValueError):
        return "bad signature"
    return None


# ---- where checkpoints are kept --------------------------------------------------------


class Sink(Protocol):
    def append(self, cp: Checkpoint) -> None: ...


class JsonlAnchorLog:
    """One JSON line per checkpoint, appended (O_APPEND) and fsync'd before it counts.

    The demo's append-only place outside PostgreSQL. Production uses storage that refuses
    overwrites and deletes (WORM object storage with a retention lock); the file's owner
    (the anchor worker) is the only writer and nothing here ever rewrites a line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, cp: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        line = orjson.dumps(cp.to_dict()) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new directory entry must survive a crash too
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def read(self) -> tuple[list[Checkpoint], list[str]]:
        """Every checkpoint in file order, and a description of each unreadable line."""
        if not self.path.exists():
            return [], []
        out: list[Checkpoint] = []
        bad: list[str] = []
        with self.path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(Checkpoint.from_dict(orjson.loads(line)))
                except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
                    bad.append(f"line {n}: {exc}")
        return out, bad

    def last(self) -> Checkpoint | None:
        """The newest checkpoint, read from the end of the file."""
        if not self.path.exists():
            return None
        with self.path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 8192))
            tail = f.read().splitlines()
        for line in reversed(tail):
            try:
                return Checkpoint.from_dict(orjson.loads(line))
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue
        return None


def anchor_path(cfg: AuditSettings, chain: str) -> Path:
    return cfg.anchor_dir / f"{chain}.jsonl"


def retire(cfg: AuditSettings, chain: str) -> Path | None:
    """Set aside a chain's checkpoints when its database is deliberately recreated
    (`fleet db reset`): kept, renamed, no longer checked against the new chain."""
    path = anchor_path(cfg, chain)
    if not path.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = path.with_name(f"{path.name}.retired-{stamp}")
    path.rename(dest)
    return dest


# ---- checking the database against checkpoints ----------------------------------------


async def check_since(
    db: audit.Db, last: Checkpoint | None, *, limit: int = 10
) -> list[ChainBreak]:
    """The entries written since `last` extend it: entry `last.seq` still hashes to
    `last.head` and every newer entry chains on (the whole log when there is no `last`)."""
    if last is None:
        return await audit.verify(db, limit=limit)
    head = bytes.fromhex(last.head) if last.head else None
    if last.seq > 0:
        stored = (await audit.hashes_at(db, [last.seq])).get(last.seq)
        if stored is None:
            return [ChainBreak(last.seq, f"gone since the checkpoint of {last.at}")]
        if stored != head:
            return [ChainBreak(last.seq, f"differs from the checkpoint of {last.at}")]
    return await audit.verify(db, limit=limit, after=last.seq, after_hash=head)


@dataclass
class Report:
    entries: int
    head_seq: int
    checkpoints: int = 0
    last_checkpoint: Checkpoint | None = None
    problems: list[ChainBreak] = field(default_factory=list)

    @property
    def unanchored(self) -> int:
        """Entries newer than the last checkpoint (not yet protected by one)."""
        return max(0, self.head_seq - (self.last_checkpoint.seq if self.last_checkpoint else 0))


async def verify_report(
    db: audit.Db,
    *,
    chain: str,
    checkpoints: Sequence[Checkpoint] = (),
    unreadable: Iterable[str] = (),
    keys: dict[str, Ed25519PublicKey] | None = None,
    limit: int = 100,
) -> Report:
    """The chain recomputed (`audit.verify`) and held against every checkpoint.

    A checkpoint counts only if its signature is good with one of `keys` and it names this
    chain; every position a checkpoint saw must still exist with the hash it saw.
    """
    seq, _ = await audit.head(db)
    report = Report(entries=await audit.count(db), head_seq=seq)
    problems = list(await audit.verify(db, limit=limit))
    for line in unreadable:
        problems.append(ChainBreak(0, f"anchor {line}"))
    good: list[Checkpoint] = []
    prev: Checkpoint | None = None
    for cp in checkpoints:
        why = signature_problem(cp, keys or {})
        if why is None and cp.chain != chain:
            why = f"belongs to chain {cp.chain!r}, not {chain!r}"
        # The log only grows: a checkpoint of a shorter log after a longer one means the file
        # was tampered with (times are the worker's wall clock and may step; not compared).
        if why is None and prev is not None and cp.seq < prev.seq:
            why = f"out of order after the checkpoint of {prev.at}"
        if why is not None:
            problems.append(ChainBreak(cp.seq, f"checkpoint of {cp.at}: {why}"))
            continue
        good.append(cp)
        prev = cp
    report.checkpoints = len(good)
    report.last_checkpoint = good[-1] if good else None
    # Each checkpointed position once (the first checkpoint that saw it names the time).
    first_seen: dict[int, Checkpoint] = {}
    for cp in good:
        if cp.seq > 0:
            first_seen.setdefault(cp.seq, cp)
    stored: dict[int, bytes] = {}
    ids = sorted(first_seen)
    for i in range(0, len(ids), 10_000):
        stored.update(await audit.hashes_at(db, ids[i : i + 10_000]))
    for s in ids:
        cp = first_seen[s]
        if s not in stored:
            problems.append(
                ChainBreak(s, f"gone: the checkpoint of {cp.at} saw entry {s} (log ends at {seq})")
            )
        elif stored[s].hex() != cp.head:
            problems.append(ChainBreak(s, f"differs from the checkpoint of {cp.at}"))
    problems.sort(key=lambda b: b.id)
    report.problems = problems[:limit]
    return report
