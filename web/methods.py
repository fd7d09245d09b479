"""Which methods the API serves at a path, from its OpenAPI document: what a 405 lists in
`Allow` (RFC 9110). FastAPI nests included routers, so its route list is not flat, and
Starlette's own 405 names only the first matching route's methods."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request

MethodTable = list[tuple[re.Pattern[str], int, frozenset[str]]]


def method_table(app: FastAPI) -> MethodTable:
    """(path pattern, number of path parameters, methods) per documented path, read once."""
    table: MethodTable | None = getattr(app.state, "method_table", None)
    if table is None:
        table = []
        for path, ops in app.openapi().get("paths", {}).items():
            parts = re.split(r"({[^}]+})", path)
            pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
            methods = {m.upper() for m in ops}
            if "GET" in methods:
                methods.add("HEAD")
            params = sum(p.startswith("{") for p in parts)
            table.append((re.compile(pattern), params, frozenset(methods)))
        app.state.method_table = table
    return table


def methods_at(request: Request) -> list[str]:
    """The methods of the documented path the request's path is: the most literal one when
    several templates match (`/standards/provisioning/violations` is not `…/{standard_id}`)."""
    matches = [
        (n, m) for pattern, n, m in method_table(request.app) if pattern.fullmatch(request.url.path)
    ]
    if not matches:
        return []
    fewest = min(n for n, _ in matches)
    return sorted(set().union(*(m for n, m in matches if n == fewest)))
