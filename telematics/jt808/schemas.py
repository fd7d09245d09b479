"""Edges of the console's terminal commands (text to the driver, position query)."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from fleet.schemas import Strict

CommandKind = Literal["text", "position_query"]
CommandStatus = Literal[
    "queued", "sent", "acknowledged", "failed", "unsupported", "answered", "expired"
]


class CommandIn(Strict):
    kind: CommandKind
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="kind=text: shown on the terminal's display (GBK, no control characters)",
    )
    tts: bool = Field(default=True, description="kind=text: the terminal reads it aloud")
    urgent: bool = Field(default=False, description="kind=text: marked urgent")

    @field_validator("text")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in v):
            raise ValueError("control characters cannot be sent to a terminal")
        try:
            v.encode("gbk")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the terminal cannot show {v[exc.start]!r} (GBK)") from exc
        return v

    @model_validator(mode="after")
    def _text(self) -> Self:
        if self.kind == "text":
            if self.text is None:
                raise ValueError("text is required for kind=text")
        elif self.text is not None:
            raise ValueError("text is only for kind=text")
        return self


class CommandOut(BaseModel):
    id: int
    vehicle_id: int | None
    terminal_id: str
    kind: CommandKind
    text: str | None = None
    status: CommandStatus
    created_at: datetime
    created_by: str | None = None
    sent_at: datetime | None = None
    replied_at: datetime | None = None
    result: int | None = Field(default=None, description="the terminal's 0x0001 result code")
    reply: dict[str, Any] | None = Field(
        default=None, description="what the terminal answered (a position for a query)"
    )


class TerminalLinkOut(BaseModel):
    """The vehicle's terminal as the gateway sees it, with its recent commands."""

    vehicle_id: int
    terminal_id: str | None
    protocol: str | None
    active: bool | None
    commands_supported: bool
    online: bool
    connected_at: datetime | None = None
    last_seen_at: datetime | None = None
    disconnected_at: datetime | None = None
    reason: str | None = None
    commands: list[CommandOut] = Field(default_factory=list)
