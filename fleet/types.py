"""Column types PostgreSQL has and SQLAlchemy lacks."""

from __future__ import annotations

from typing import Any

from sqlalchemy.types import UserDefinedType


class Ltree(UserDefinedType[str]):
    """PostgreSQL ltree (org paths such as ``1.15.230``); handled as text in Python."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "ltree"
