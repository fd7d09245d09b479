"""Serving the built front end (web/frontend/dist) from the API process.

Every GET outside /api answers a file from the bundle or, for client-side routes, index.html
(SPA fallback); /api paths are never shadowed. Hashed assets are cached for a year; the HTML
shell and the service worker are revalidated on every load so a new build takes effect.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from web.methods import methods_at

DIST = Path(__file__).resolve().parent / "frontend" / "dist"

NOT_BUILT = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<title>公务用车管理平台 — front end not built</title>
<body style="font-family:system-ui,sans-serif;max-width:640px;margin:60px auto;line-height:1.6">
<h1>前端尚未构建 · The web front end is not built</h1>
<p>运行 <code>bash scripts/setup.sh</code>，或在 <code>web/frontend</code> 中执行
<code>npm install &amp;&amp; npm run build</code>，然后刷新本页。</p>
<p>Run <code>bash scripts/setup.sh</code> (or <code>npm install &amp;&amp; npm run build</code> in
<code>web/frontend</code>) and reload. The API itself is up: <a href="/api/docs">/api/docs</a>.</p>
</body></html>"""

_NO_CACHE = {"Cache-Control": "no-cache"}
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def install_frontend(app: FastAPI, dist: Path = DIST) -> None:
    """Add the catch-all GET route; call after every API router is included."""
    root = dist.resolve()

    @app.get("/{path:path}", include_in_schema=False)
    async def frontend(path: str, request: Request) -> Response:
        if path == "api" or path.startswith("api/"):
            # A path the API has, asked with GET it does not serve there: 405 (with Allow,
            # added by the app's handler), not this route's 404.
            raise StarletteHTTPException(405 if methods_at(request) else 404)
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503, headers=_NO_CACHE)
        if path:
            candidate = (root / path).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():
                hashed = path.startswith("assets/")
                headers = _IMMUTABLE if hashed else _NO_CACHE
                media = "application/manifest+json" if path.endswith(".webmanifest") else None
                if path.endswith(".geojson"):
                    media = "application/geo+json"
                return FileResponse(candidate, headers=headers, media_type=media)
            if "." in path.rsplit("/", 1)[-1]:
                # a missing file (not a client route): a plain 404, not the HTML shell
                return JSONResponse(
                    {"error": {"code": "not_found", "message": "Not Found"}}, status_code=404
                )
        return FileResponse(index, headers=_NO_CACHE, media_type="text/html")
