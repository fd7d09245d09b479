"""Shared edge schemas: strict base model, pagination, points and errors."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from annotated_types import Ge, Le
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


# PostgreSQL bigint: ids and counts beyond it are a 422 on the field, never a database error.
BIGINT_MAX = 2**63 - 1
Id = Annotated[int, Ge(1), Le(BIGINT_MAX)]
"""A database row id in a path, query or body: 1 … 2^63 − 1."""


class Strict(BaseModel):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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
    offset: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="rows to skip")] = 0,
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
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 422)
}
