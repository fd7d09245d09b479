"""Shared edge schemas: strict base model, pagination, points and errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.fields import JSON_INT_MAX, Id

__all__ = ["JSON_INT_MAX", "Id", "Out", "Page", "Point", "Strict"]

T = TypeVar("T")


class Strict(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped; values
    are taken as the schema types them (no "yes" for true, no 0 for a date: `fleet.fields`
    holds the few deliberate relaxations); NaN and infinities are refused."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, strict=True, allow_inf_nan=False
    )


class Out(BaseModel):
    """Base of responses read from rows, which answer whatever is stored: a NaN number goes
    out as null (an infinite amount as a string) rather than failing the read, and
    PostgreSQL's ±infinity timestamps, which asyncpg reads as naive datetime.max/min, are
    given UTC so every date-time in a response carries its offset, as the schema says."""

    model_config = ConfigDict(from_attributes=True, allow_inf_nan=True)

    @field_validator("*", mode="after")
    @classmethod
    def _aware(cls, value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Point(Strict):
    """A WGS-84 position in degrees."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PageParams(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=JSON_INT_MAX, description="rows to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
    errors: list[ErrorBody] | None = None


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 422)
}
