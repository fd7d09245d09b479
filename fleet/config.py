"""The one Settings object: env prefix FLEET_, nested sections, working defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class DbSettings(BaseModel):
    """Two logins to one database (docs/operations.md, "Database roles").

    `user` is the runtime role every long-running process connects as (API, ingest, derive,
    workers, simulator, anchor): no superuser, no DDL, insert-only on the audit log.
    `owner_user` owns the schema: migrations, `db init`, seeding, partition maintenance and
    pg_repack run as it (by default the cluster's superuser, which also creates the database,
    the extensions and the runtime role).
    """

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "fleet_app"
    password: SecretStr = SecretStr("")
    owner_user: str = "postgres"
    owner_password: SecretStr = SecretStr("")
    name: str = "fleet"
    pool_size: int = 10

    def owner(self) -> DbSettings:
        """The same database reached as the owner role (migrations, seeding, maintenance)."""
        return self.model_copy(update={"user": self.owner_user, "password": self.owner_password})

    def url(self, *, driver: str = "postgresql+asyncpg", name: str | None = None) -> str:
        pw = self.password.get_secret_value()
        auth = f"{self.user}:{pw}@" if pw else f"{self.user}@"
        return f"{driver}://{auth}{self.host}:{self.port}/{name or self.name}"

    def dsn(self, *, name: str | None = None) -> str:
        """Plain libpq DSN for asyncpg.connect (ingest hot path, seeding)."""
        return self.url(driver="postgresql", name=name)


class AuthSettings(BaseModel):
    # Generated into .env by scripts/setup.sh; the fallback only serves throw-away runs.
    secret: SecretStr = SecretStr("dev-only-insecure-secret-change-me-0123456789")
    algorithm: str = "HS256"
    # Access tokens are short and name a server-side session (fleet/identity/sessions.py);
    # the browser renews them with the HttpOnly refresh cookie.
    token_ttl_s: int = Field(default=600, gt=0, le=24 * 3600)
    session_idle_s: int = Field(default=1800, ge=60)  # a session unused this long ends
    session_absolute_s: int = Field(default=12 * 3600, ge=300)  # … and this long after login
    # A session's last use is written at most this often (s): a read-only request then costs
    # one primary-key read, not a write.
    session_touch_s: int = Field(default=60, ge=1)
    # Tokens without a session id (`sid`) are refused; only the test suite's `bearer()` helper
    # turns this on (a signed token for a user without a login round). Never in production.
    accept_sessionless_tokens: bool = False
    # Failed logins (fleet/identity/lockout.py): after `lockout_threshold` consecutive failures
    # a username is locked for `lockout_s`; one source address may fail `source_failures`
    # times per `source_window_s` before its logins are refused for the rest of the window.
    lockout_threshold: int = Field(default=5, ge=1, le=5)
    lockout_s: int = Field(default=900, ge=1)
    source_failures: int = Field(default=20, ge=1)
    source_window_s: int = Field(default=600, ge=1)
    # Password policy (fleet/identity/passwords.py): not one of the last `password_history`;
    # administrators' passwords expire after `admin_password_max_age_days`, others' after
    # `password_max_age_days` (0: never).
    password_history: int = Field(default=5, ge=0, le=24)
    admin_password_max_age_days: int = Field(default=90, ge=0)
    password_max_age_days: int = Field(default=0, ge=0)
    # argon2 off the event loop (fleet/identity/hashing.py): threads hashing at once, logins
    # that may wait for one (beyond: 503 auth_busy), and how long one may wait. 0 workers
    # hashes inline on the event loop: the old behaviour, kept as bench/login_burst.py's baseline.
    hash_workers: int = Field(default=2, ge=0, le=64)
    hash_queue: int = Field(default=64, ge=0, le=10_000)
    hash_wait_s: float = Field(default=10.0, gt=0, le=300)
    hash_nice: int = Field(default=10, ge=0, le=19)  # CPU priority of the hashing threads
    # A websocket ticket (POST /api/v1/live/ticket) is single-use and valid this long.
    live_ticket_ttl_s: float = Field(default=30.0, gt=0, le=300)


class MqttSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 1884
    service_user: str = "fleet-ingest"
    service_password: SecretStr = SecretStr("")
    topic_prefix: str = "fleet/v1/terminals"


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:6379/0"
    # Pub/sub channels are global to a Redis server (database numbers do not separate them):
    # a test run or a benchmark beside a demo sets its own prefix so neither hears the other.
    channel_prefix: str = "fleet"


class SeedSettings(BaseModel):
    demo_password: SecretStr = SecretStr("")
    # HMAC key from which simulated terminals' passwords are derived (demo fleet only).
    terminal_key: SecretStr = SecretStr("")


class AuditSettings(BaseModel):
    """Anchoring the audit chain outside the database (fleet/anchors.py)."""

    # Ed25519 private key (PKCS#8 PEM, mode 0600), made by `fleet audit keygen` (setup.sh).
    # Only the anchor worker reads it; the database never sees it.
    signing_key_file: Path = ROOT / "var" / "audit-keys" / "anchor-signing.pem"
    # Public keys (PEM files) that `fleet audit verify` trusts; empty: the signing key's own
    # public half (`<signing_key_file>.pub`). Keep old keys here after a rotation.
    public_key_files: list[Path] = Field(default_factory=list)
    # Append-only JSON-lines files of signed checkpoints, one per chain (database name).
    anchor_dir: Path = ROOT / "var" / "audit-anchors"
    # How often the anchor worker signs the chain head (s): the window in which a DB
    # superuser could still rewrite the newest entries undetected.
    anchor_interval_s: float = Field(default=120.0, ge=1.0, le=3600.0)
    # Refusals (401/403, failed logins) audited per source address and per minute before
    # further ones from that source are only counted (a flood must not flood the log).
    refusals_per_source_per_min: int = Field(default=30, ge=1)
    refusals_per_min: int = Field(default=600, ge=1)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    # Request bodies above these are refused with 413 before they are read into memory; a
    # 20,000-vertex geofence is ~0.6 MB of GeoJSON. Paths containing "/import" take files.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_import_body_bytes: int = Field(33_554_432, ge=1024)


class LimitsSettings(BaseModel):
    """How far from now (or from its trip) each kind of date and time may lie when it enters
    (`fleet.fields`); beyond these a value is a typo or a probe, and a 422 on the field."""

    trip_past_min: int = Field(5, ge=0, description="a departure may lie this far in the past")
    trip_ahead_days: int = Field(180, ge=1, description="… and at most this far ahead")
    driver_skew_min: int = Field(10, ge=0, description="a driver's `at` may be this far ahead")
    driver_past_days: int = Field(14, ge=1, description="… and at most this far back")
    driver_slack_h: int = Field(48, ge=0, description="… within the trip's window ± this")
    cost_past_years: int = Field(5, ge=1, description="costs and services booked this far back")
    due_ahead_years: int = Field(10, ge=1, description="a next-service/expiry date this far ahead")
    window_past_days: int = Field(1, ge=0, description="an auto-assign window may start back")
    window_max_days: int = Field(7, ge=1, description="… and span at most this many days")
    report_max_months: int = Field(120, ge=1, description="a report covers at most this many")
    geofence_max_vertices: int = Field(20_000, ge=4)
    # GET /geofences simplifies for display (ST_SimplifyPreserveTopology, degrees; 1e-4 ≈ 11 m).
    geofence_display_tolerance_deg: float = Field(0.0001, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLEET_",
        env_nested_delimiter="__",
        env_file=str(ROOT / ".env"),
        extra="ignore",
    )

    db: DbSettings = Field(default_factory=DbSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    seed: SeedSettings = Field(default_factory=SeedSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    timezone: str = "Asia/Shanghai"
    var_dir: Path = ROOT / "var"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
