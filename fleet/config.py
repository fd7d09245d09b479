"""The one Settings object: env prefix FLEET_, nested sections, working defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class DbSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: SecretStr = SecretStr("")
    name: str = "fleet"
    pool_size: int = 10

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
    token_ttl_s: int = 12 * 3600


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


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000


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
    timezone: str = "Asia/Shanghai"
    var_dir: Path = ROOT / "var"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
