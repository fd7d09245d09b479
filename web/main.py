"""ASGI entry point for uvicorn: `web.main:app`."""

from web.app import create_app

app = create_app()
