"""No secret in any log line (issue 9 item 5): the scrubber on structlog events and on every
stdlib record, uvicorn's access log included. The end-to-end check greps a real run's logs
(tests/web/test_live_account.py); these pin down each path a secret could take."""

from __future__ import annotations

import logging
import sys

import structlog
from uvicorn.logging import AccessFormatter, DefaultFormatter

from fleet.identity.security import issue_token
from fleet.logging import install_scrubber, scrub, scrub_event
from tests.conftest import Settings

PASSWORD = "Hunter2-correct-horse"


def _jwt(settings: Settings) -> str:
    return issue_token(settings.auth, 42).access_token


def test_scrub_removes_tokens_tickets_and_passwords(settings: Settings) -> None:
    jwt = _jwt(settings)
    lines = [
        f'127.0.0.1:5 - "GET /api/v1/live?token={jwt} HTTP/1.1" 403',
        '"WebSocket /api/v1/live?ticket=Qx1_abcDEF-123&x=1" [accepted]',
        f"Authorization: Bearer {jwt}",
        f"{{'username': 'a', 'password': '{PASSWORD}'}}",
        f'{{"new_password":"{PASSWORD}","ok":1}}',
        f"postgresql://fleet:{PASSWORD}@127.0.0.1/fleet",
        f"GET /x?password={PASSWORD}&page=2",
        f"half a token: {jwt[:40]}",
    ]
    for line in lines:
        out = scrub(line)
        assert PASSWORD not in out and "eyJ" not in out and "Qx1_abc" not in out, out
        assert "[redacted]" in out
    # what is not a secret stays readable
    assert scrub("GET /api/v1/orgs?code=450103&page=2") == "GET /api/v1/orgs?code=450103&page=2"
    assert scrub("ingest.batch rows=500 passed=3") == "ingest.batch rows=500 passed=3"


def test_structlog_fields_named_or_holding_secrets_are_redacted(settings: Settings) -> None:
    jwt = _jwt(settings)
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[
            structlog.processors.format_exc_info,
            scrub_event,
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
    )
    line = logger.info(
        "login.failed",
        username="dispatcher.qingxiu",
        password=PASSWORD,
        access_token=jwt,
        data={"ticket": "abc123", "nested": [{"secret": PASSWORD}], "n": 1},
        error=f"ValueError('bad {jwt}')",
        ok=True,
    )
    assert PASSWORD not in line and "eyJ" not in line and "abc123" not in line, line
    assert "username='dispatcher.qingxiu'" in line and "'n': 1" in line
    try:
        raise RuntimeError(f"could not verify {jwt} for password={PASSWORD}")
    except RuntimeError:
        line = logger.exception("api.unhandled")
    assert "RuntimeError" in line and "eyJ" not in line and PASSWORD not in line, line


def test_every_stdlib_record_is_scrubbed_uvicorn_access_log_included(settings: Settings) -> None:
    jwt = _jwt(settings)
    install_scrubber()
    access = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", f"/api/v1/live?token={jwt}", "1.1", 403),
        None,
    )
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(access)
    assert line == '127.0.0.1:5555 - "GET /api/v1/live?token=[redacted] HTTP/1.1" 403 Forbidden'

    try:
        raise ValueError(f"password={PASSWORD} token {jwt}")
    except ValueError:
        record = logging.getLogger("uvicorn.error").makeRecord(
            "uvicorn.error",
            logging.ERROR,
            __file__,
            1,
            "Exception in ASGI application for %s",
            (f"Bearer {jwt}",),
            sys.exc_info(),
        )
    text = DefaultFormatter("%(message)s").format(record)
    assert "ValueError" in text and "eyJ" not in text and PASSWORD not in text, text
