"""Notification payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from fleet.schemas import Id, Out, Page, Strict


class NotificationOut(Out):
    id: int
    kind: str
    message: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(Page[NotificationOut]):
    unread: int = Field(description="the caller's unread notifications, whatever the filter")


class MarkRead(Strict):
    """Either some ids, or every unread notification (`all: true`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["ids"],
                    "properties": {"ids": {"minItems": 1}, "all": {"const": False}},
                },
                {
                    "required": ["all"],
                    "properties": {"all": {"const": True}, "ids": {"maxItems": 0}},
                },
            ]
        }
    )

    ids: list[Id] = Field(default_factory=list, max_length=500)
    all: bool = Field(default=False, description="mark every unread notification read")

    @model_validator(mode="after")
    def _one_of(self) -> MarkRead:
        if not self.ids and not self.all:
            raise ValueError("give `ids` or `all: true`")
        if self.ids and self.all:
            raise ValueError("give either `ids` or `all: true`, not both")
        return self


class MarkReadOut(Out):
    marked: int
    unread: int
