"""Gateway settings (env FLEET_JT808__*): where it listens, timeouts, batching."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.config import ROOT


class Jt808Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLEET_JT808__", env_file=str(ROOT / ".env"), extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(6808, ge=1, le=65535)
    # Names this process in terminal_links and terminal_commands (several gateways may run).
    name: str = "jt808-1"
    # No frame for this long (terminals send a heartbeat every 30-60 s): the connection is
    # closed and the terminal marked offline.
    heartbeat_timeout_s: float = Field(180.0, gt=0)
    sweep_s: float = Field(5.0, gt=0, description="how often idle connections are looked for")
    # Backstop for a missed notification: connected terminals' active flag re-read this often.
    recheck_s: float = Field(30.0, gt=0)
    # A command not delivered within this long (terminal offline) expires.
    command_ttl_s: float = Field(600.0, gt=0)
    command_poll_s: float = Field(5.0, gt=0, description="backstop poll for queued commands")
    # Split messages whose packets do not all arrive within this long are dropped.
    reassembly_timeout_s: float = Field(60.0, gt=0)
    # A connection that fails authentication this many times is closed.
    auth_failures_max: int = Field(5, ge=1)
    # Points waiting for a commit above which connections stop being read (back-pressure).
    pending_max: int = Field(20_000, ge=100)
    listen_backlog: int = Field(4096, ge=16)
    # terminal_links.last_seen_at is written in bulk this often (never per heartbeat).
    seen_flush_s: float = Field(30.0, gt=0)
