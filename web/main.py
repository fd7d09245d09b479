"""ASGI entry point for uvicorn: `web.main:app`.

Logging is configured here, before the app exists, so that however the API is started
(`fleet serve`, `uvicorn web.main:app`, each of several workers) its structlog events and
uvicorn's access and error logs pass the secret scrubber (fleet/logging.py).
"""

from fleet.logging import configure
from web.app import create_app

configure()
app = create_app()
