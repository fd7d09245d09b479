"""Region seed: real divisions, synthetic units, and a deterministic fleet of any size.

Divisions (region, cities, counties) come from `fleet.divisions` (a maintained data package).
Units, vehicles, drivers and terminals are generated from a seeded RNG so the same
arguments always give the same region. Bulk rows go in with asyncpg `executemany`.

Over 500 lines: one generator per kind of row, kept together because each reads the
same seeded RNG in a fixed order (moving one changes every region generated after it).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import asyncpg

from fleet import boundaries
from fleet.divisions import Division, province_divisions
from fleet.identity.security import hash_password
from fleet.registry.vin import check_digit as vin_check_digit
from telematics.broker.credentials import derived_secret, hash_secret

# Plate letters of Guangxi's cities (桂A 南宁 ... 桂R 贵港); the region's own units use 桂A.
PLATE_LETTER = {
    "450100": "A",
    "450200": "B",
    "450300": "C",
    "450400": "D",
    "450500": "E",
    "451400": "F",
    "451300": "G",
    "451100": "J",
    "450900": "K",
    "451000": "L",
    "451200": "M",
    "450700": "N",
    "450600": "P",
    "450800": "R",
}

# Unit templates per level: (suffix, category weights, vertical system or None, pool unit?)
UnitTemplate = tuple[str, dict[str, float], str | None, bool]
UNIT_TEMPLATES: tuple[UnitTemplate, ...] = (
    ("委办公室", {"courier": 0.4, "pool": 0.6}, None, False),
    ("人民政府办公室", {"courier": 0.3, "pool": 0.7}, None, False),
    ("机关事务管理局", {"pool": 0.95, "special": 0.05}, None, True),
    ("公安局", {"law_enforcement": 0.8, "emergency": 0.1, "pool": 0.1}, "GA", False),
    ("市场监督管理局", {"law_enforcement": 0.6, "pool": 0.4}, "SJ", False),
    ("应急管理局", {"emergency": 0.6, "pool": 0.4}, None, False),
    ("自然资源局", {"special": 0.4, "pool": 0.6}, None, False),
    ("交通运输局", {"law_enforcement": 0.4, "special": 0.2, "pool": 0.4}, None, False),
    ("卫生健康委员会", {"emergency": 0.3, "pool": 0.7}, None, False),
    ("纪律检查委员会", {"pool": 0.8, "special": 0.2}, None, False),
)
SYSTEMS = {"GA": "公安系统", "SJ": "市场监管系统"}

BODY_BY_CATEGORY: dict[str, dict[str, float]] = {
    "pool": {"sedan": 0.55, "suv": 0.15, "mpv": 0.18, "minibus": 0.09, "bus": 0.03},
    "courier": {"sedan": 1.0},  # 机要通信: sedans within ¥120,000 and 1.6 L
    "law_enforcement": {"sedan": 0.4, "suv": 0.45, "mpv": 0.1, "minibus": 0.05},
    "emergency": {"sedan": 0.1, "suv": 0.5, "mpv": 0.2, "minibus": 0.2},
    "special": {"suv": 0.4, "mpv": 0.3, "minibus": 0.3},
}
# Seats include the driver's. The usage standard sends 5–7 passengers to an MPV/商务车, so
# the fleet has 8-seat MPVs too (a 7-seat one carries 6): with only 7-seat MPVs, 4 % of a
# city day's requests (7 passengers) could never be served (bench.auto_assign).
SEATS = {
    "sedan": (5,),
    "suv": (5, 5, 7),
    "mpv": (7, 8),
    "minibus": (14, 17, 19),
    "bus": (33, 45),
}
NEV_SHARE = {
    "sedan": (0.28, 0.1),
    "suv": (0.2, 0.12),
    "mpv": (0.15, 0.1),
    "minibus": (0.1, 0.0),
    "bus": (0.3, 0.0),
}  # (bev, phev)
ENGINE = {
    "sedan": (1.4, 1.5, 1.6, 1.8),
    "suv": (1.5, 1.8, 2.0),
    "mpv": (2.0, 2.4),
    "minibus": (2.4, 2.8),
    "bus": (6.7, 8.9),
}
PRICE = {
    "sedan": (100_000, 180_000),
    "suv": (150_000, 250_000),
    "mpv": (200_000, 320_000),
    "minibus": (250_000, 420_000),
    "bus": (600_000, 1_000_000),
}
STATUS_WEIGHTS = {
    "in_service": 0.92,
    "under_repair": 0.03,
    "sealed": 0.02,
    "awaiting_disposal": 0.02,
    "scrapped": 0.01,
}
LEVEL_SHARE = {"region": 0.06, "city": 0.30, "county": 0.64}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高梁郑谢韦覃蒙莫陆廖卢蓝农黎"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂华建国志宏海波斌凯文玲"
VIN_WMI = ("LFV", "LSV", "LGB", "LVS", "LBV", "LSG", "LDC", "LHG")
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
VIN_YEAR = "ABCDEFGHJKLMNPRSTVWXY123456789"  # 2010 = A


@dataclass(frozen=True)
class SeedConfig:
    vehicles: int = 26_638
    seed: int = 42
    province: str = "45"
    demo_password: str | None = None
    terminal_key: str = ""
    # Demo users must change the demo password at their first login (issue 11); the test
    # suite and the benchmarks, which log in with it, seed them as already changed.
    must_change_password: bool = True


@dataclass
class SeedReport:
    orgs: int = 0
    cities: int = 0
    counties: int = 0
    units: int = 0
    boundaries: int = 0  # cities and counties with a drawn border (fleet.boundaries)
    vehicles: int = 0
    drivers: int = 0
    terminals: int = 0
    users: int = 0
    seconds: float = 0.0
    demo_users: list[tuple[str, str, str]] = field(default_factory=list)  # (username, role, org)


@dataclass
class _Org:
    id: int
    parent_id: int | None
    kind: str
    code: str
    name: str
    path: str
    lon: float
    lat: float
    system_id: int | None = None
    system_path: str | None = None
    # generation hints (not stored)
    level: str = ""
    template: UnitTemplate | None = None
    city_code: str | None = None


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _jitter(rng: random.Random, lon: float, lat: float, km: float) -> tuple[float, float]:
    r = km * math.sqrt(rng.random())
    a = rng.random() * 2 * math.pi
    dlat = r * math.cos(a) / 111.0
    dlon = r * math.sin(a) / (111.0 * math.cos(math.radians(lat)))
    return round(lon + dlon, 6), round(lat + dlat, 6)


def build_orgs(divisions: Sequence[Division], rng: random.Random) -> list[_Org]:
    """Region -> cities -> counties from the divisions; units and vertical systems generated."""
    orgs: list[_Org] = []
    by_code: dict[str, _Org] = {}
    next_id = 1

    def add(o: _Org) -> _Org:
        orgs.append(o)
        by_code[o.code] = o
        return o

    for d in divisions:
        kind = {"province": "region", "city": "city", "county": "county"}[d.level]
        parent = by_code.get(d.parent_code) if d.parent_code else None
        path = f"{parent.path}.{next_id}" if parent else str(next_id)
        add(
            _Org(
                next_id,
                parent.id if parent else None,
                kind,
                d.code,
                d.name,
                path,
                d.lon,
                d.lat,
                level=kind,
                city_code=d.code
                if kind == "city"
                else (d.parent_code if kind == "county" else None),
            )
        )
        next_id += 1
    region = orgs[0]
    # Vertical systems: a root per system and a node per city, outside the territorial tree.
    system_nodes: dict[tuple[str, str | None], _Org] = {}
    for key, name in SYSTEMS.items():
        root = add(
            _Org(
                next_id,
                None,
                "system",
                f"SYS-{key}",
                f"{region.name}{name}",
                str(next_id),
                region.lon,
                region.lat,
                level="system",
            )
        )
        next_id += 1
        system_nodes[(key, None)] = root
        for city in [o for o in orgs if o.kind == "city"]:
            node = add(
                _Org(
                    next_id,
                    root.id,
                    "system",
                    f"SYS-{key}-{city.code}",
                    f"{city.name}{name}",
                    f"{root.path}.{next_id}",
                    city.lon,
                    city.lat,
                    level="system",
                )
            )
            next_id += 1
            system_nodes[(key, city.code)] = node
    for parent in [o for o in orgs if o.kind in ("region", "city", "county")]:
        prefix = parent.name
        for i, tpl in enumerate(UNIT_TEMPLATES, start=1):
            suffix, _, system, _ = tpl
            lon, lat = _jitter(rng, parent.lon, parent.lat, 3.0)
            sys_node = system_nodes[(system, parent.city_code)] if system else None
            add(
                _Org(
                    next_id,
                    parent.id,
                    "unit",
                    f"{parent.code}-{i:02d}",
                    prefix + suffix,
                    f"{parent.path}.{next_id}",
                    lon,
                    lat,
                    system_id=sys_node.id if sys_node else None,
                    system_path=sys_node.path if sys_node else None,
                    level=parent.kind,
                    template=tpl,
                    city_code=parent.city_code,
                )
            )
            next_id += 1
    return orgs


def _allocate(total: int, weights: list[float]) -> list[int]:
    """Largest-remainder split of total by weights."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    counts = [int(x) for x in raw]
    rest = total - sum(counts)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[:rest]:
        counts[i] += 1
    return counts


def build_fleet(
    orgs: list[_Org], cfg: SeedConfig, rng: random.Random
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    units = [o for o in orgs if o.kind == "unit"]
    per_level = {lvl: sum(1 for u in units if u.level == lvl) for lvl in LEVEL_SHARE}
    weights = [LEVEL_SHARE[u.level] / per_level[u.level] * rng.uniform(0.6, 1.4) for u in units]
    counts = _allocate(cfg.vehicles, weights)
    plate_seq: dict[str, int] = {}
    vehicles: list[tuple[object, ...]] = []
    drivers: list[tuple[object, ...]] = []
    terminals: list[tuple[object, ...]] = []
    vid = 0
    did = 0
    for unit, n in zip(units, counts, strict=True):
        assert unit.template is not None
        _, cat_weights, _, is_pool_unit = unit.template
        letter = PLATE_LETTER.get(unit.city_code or "", "A")
        for _ in range(n):
            vid += 1
            category = _pick(rng, cat_weights)
            body = _pick(rng, BODY_BY_CATEGORY[category])
            seats = rng.choice(SEATS[body])
            bev, phev = NEV_SHARE[body]
            x = rng.random()
            energy = "bev" if x < bev else ("phev" if x < bev + phev else "ice")
            nev_range = None
            if energy == "bev":
                nev_range = (
                    rng.randrange(300, 620, 10) if body != "bus" else rng.randrange(200, 400, 10)
                )
            elif energy == "phev":
                nev_range = rng.randrange(60, 210, 10)
            engine = None
            if energy != "bev":
                choices = ENGINE[body]
                if category == "courier":
                    choices = tuple(e for e in choices if e <= 1.6) or choices
                engine = rng.choice(choices)
            lo, hi = PRICE[body]
            if category == "courier":
                hi = min(hi, 120_000)
            price = round(rng.uniform(lo, hi), -2)
            seq = plate_seq.get(letter, 0) + 1
            plate_seq[letter] = seq
            plate = f"桂{letter}{'D' if energy != 'ice' else ''}{seq:05d}"
            year = rng.randint(2012, 2026)
            purchase = date(year, rng.randint(1, 12 if year < 2026 else 10), rng.randint(1, 28))
            body_vin = rng.choice(VIN_WMI) + "".join(rng.choice(VIN_CHARS) for _ in range(5))
            tail = VIN_YEAR[(year - 2010) % 30] + rng.choice("ABCDEFGH") + f"{vid:06d}"
            vin = body_vin + "0" + tail
            vin = vin[:8] + vin_check_digit(vin) + vin[9:]
            status = _pick(rng, STATUS_WEIGHTS)
            pool = "none"
            if is_pool_unit and category == "pool":
                pool = "city" if unit.level in ("city", "region") else "county"
            dlon, dlat = _jitter(rng, unit.lon, unit.lat, 1.5)
            vehicles.append(
                (
                    vid,
                    plate,
                    vin,
                    category,
                    body,
                    seats,
                    energy,
                    nev_range,
                    engine,
                    price,
                    purchase,
                    unit.id,
                    dlon,
                    dlat,
                    status,
                    pool,
                )
            )
            tid = f"GX{vid:08d}"
            terminals.append((tid, vid, rng.choice(("JT808-G7", "BSJ-A6", "HQ-T3")), tid))
        for _ in range(max(1, round(n * 0.85))):
            did += 1
            name = rng.choice(SURNAMES) + "".join(
                rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))
            )
            licence = rng.choices(("C1", "B1", "B2", "A1"), weights=(0.75, 0.12, 0.08, 0.05))[0]
            phone = f"1{rng.choice('3578')}{rng.randrange(10**8, 10**9)}"
            expires = date(rng.randint(2027, 2034), rng.randint(1, 12), rng.randint(1, 28))
            drivers.append((did, name, licence, f"45{did:016d}", expires, phone, unit.id))
    return vehicles, drivers, terminals


DEMO_USERS = (
    # username, display name, role, org selector
    ("admin", "系统管理员", "admin", "region"),
    ("auditor", "自治区监督员", "auditor", "region"),
    ("auditor.ga", "公安系统监督员", "auditor", "system:GA"),
    ("dispatcher.nanning", "南宁市调度员", "dispatcher", "city:450100"),
    ("dispatcher.qingxiu", "青秀区调度员", "dispatcher", "county:450103"),
    ("dispatcher.xingning", "兴宁区调度员", "dispatcher", "county:450102"),
    ("approver.qingxiu", "青秀区政府办审批人", "approver", "unit:450103-02"),
    ("requester.qingxiu", "青秀区政府办申请人", "requester", "unit:450103-02"),
    ("driver.qingxiu", "青秀区机关事务局驾驶员", "driver", "unit:450103-03"),
)


def _resolve(selector: str, orgs: list[_Org]) -> _Org:
    kind, _, code = selector.partition(":")
    if kind == "region":
        return orgs[0]
    if kind == "system":
        return next(o for o in orgs if o.code == f"SYS-{code}")
    return next(o for o in orgs if o.code == code)


def _hash_terminal_secrets(args: tuple[str, list[str]]) -> list[str]:
    key, ids = args
    return [hash_secret(derived_secret(key, tid)) for tid in ids]


async def is_seeded(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM vehicles"))


async def seed(
    conn: asyncpg.Connection, cfg: SeedConfig, progress: Callable[[str], None] = lambda _: None
) -> SeedReport:
    """Write the region into an empty database, in the caller's transaction."""
    t0 = time.perf_counter()
    rng = random.Random(cfg.seed)
    report = SeedReport()
    if await conn.fetchval("SELECT count(*) FROM orgs"):
        raise RuntimeError("the database already holds organisations; seed needs an empty one")
    divisions = province_divisions(cfg.province)
    orgs = build_orgs(divisions, rng)
    progress(f"organisations: {len(orgs)} ({sum(o.kind == 'unit' for o in orgs)} units)")
    await conn.executemany(
        "INSERT INTO orgs (id, parent_id, kind, code, name, path, system_id, system_path, location)"
        " VALUES ($1, $2, $3, $4, $5, $6::text::ltree, $7, $8::text::ltree,"
        " ST_SetSRID(ST_MakePoint($9, $10), 4326))",
        [
            (
                o.id,
                o.parent_id,
                o.kind,
                o.code,
                o.name,
                o.path,
                o.system_id,
                o.system_path,
                o.lon,
                o.lat,
            )
            for o in orgs
        ],
    )
    drawn = await boundaries.load(conn)
    report.boundaries = drawn.cities + drawn.counties
    progress(
        f"boundaries: {drawn.cities} cities, {drawn.counties} counties"
        + (
            f"; without: {', '.join(drawn.orgs_without_boundary)}"
            if drawn.orgs_without_boundary
            else ""
        )
    )
    vehicles, drivers, terminals = build_fleet(orgs, cfg, rng)
    progress(f"vehicles: writing {len(vehicles)}")
    await conn.executemany(
        "INSERT INTO vehicles (id, plate, vin, category, body_type, seats, energy, nev_range_km,"
        " engine_l, price_cny, purchase_date, unit_id, depot, status, shared_pool) VALUES"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
        " ST_SetSRID(ST_MakePoint($13, $14), 4326), $15, $16)",
        vehicles,
    )
    progress(f"drivers: writing {len(drivers)}")
    await conn.executemany(
        "INSERT INTO drivers (id, name, licence_class, licence_no, licence_expires, phone, unit_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        drivers,
    )
    progress(f"terminals: hashing and writing {len(terminals)} secrets")
    # Without a key the secrets are random: such terminals can only log in after rotation.
    key = cfg.terminal_key or f"random-{rng.random()}"
    ids = [str(t[0]) for t in terminals]
    hashes: list[str] = []
    chunk = 2000
    # PBKDF2 is CPU-bound: spread it over the cores (about 1 ms per secret).
    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for i, part in enumerate(
            pool.map(
                _hash_terminal_secrets,
                [(key, ids[j : j + chunk]) for j in range(0, len(ids), chunk)],
            )
        ):
            hashes.extend(part)
            progress(f"terminals: {min((i + 1) * chunk, len(ids))}/{len(ids)}")
    term_rows = [
        (tid, h, vid, model) for (tid, vid, model, _), h in zip(terminals, hashes, strict=True)
    ]
    await conn.executemany(
        "INSERT INTO terminals (id, secret_hash, vehicle_id, model) VALUES ($1, $2, $3, $4)",
        term_rows,
    )
    for table in ("orgs", "vehicles", "drivers"):
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )
    if cfg.demo_password:
        pw_hash = hash_password(cfg.demo_password)
        for username, display, role, selector in DEMO_USERS:
            org = _resolve(selector, orgs)
            uid = await conn.fetchval(
                "INSERT INTO users (username, password_hash, display_name, org_id,"
                " must_change_password) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                username,
                pw_hash,
                display,
                org.id,
                cfg.must_change_password,
            )
            await conn.execute(
                "INSERT INTO role_bindings (user_id, role, org_id) VALUES ($1, $2, $3)",
                uid,
                role,
                org.id,
            )
            if role == "driver":
                await conn.execute(
                    "UPDATE drivers SET user_id = $1, name = $2 WHERE id ="
                    " (SELECT min(id) FROM drivers WHERE unit_id = $3)",
                    uid,
                    "示范驾驶员",
                    org.id,
                )
            report.demo_users.append((username, role, org.name))
        report.users = len(DEMO_USERS)
    await conn.execute(
        "INSERT INTO audit_log (id, at, actor, action, entity, entity_id, data, hash)"
        " VALUES (0, now(), 'cli', 'seed.run', 'region', $1, $2::jsonb, '\\x')",
        cfg.province,
        f'{{"vehicles": {len(vehicles)}, "seed": {cfg.seed}, "boundaries": {report.boundaries}}}',
    )
    report.orgs = len(orgs)
    report.cities = sum(o.kind == "city" for o in orgs)
    report.counties = sum(o.kind == "county" for o in orgs)
    report.units = sum(o.kind == "unit" for o in orgs)
    report.vehicles = len(vehicles)
    report.drivers = len(drivers)
    report.terminals = len(terminals)
    report.seconds = time.perf_counter() - t0
    return report
