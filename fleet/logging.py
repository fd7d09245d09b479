"""Structured logging: event names plus key=value fields, with every secret scrubbed.

No secret reaches a log line, whoever writes it:

- structlog events go through :func:`scrub_event`: a field whose *name* says it holds a secret
  (password, token, ticket, secret, authorization, cookie, api key, credential …) is replaced
  by ``[redacted]``, and every text value is cleaned by :func:`scrub` (nested dicts and lists
  too); exceptions are rendered first, so a traceback is cleaned like any other text;
- every stdlib record (uvicorn's access and error logs, libraries) is cleaned when it is
  created, by a log-record factory installed once per process (:func:`install_scrubber`), so
  no handler or logger configuration can bypass it — the access log's query strings included.

:func:`scrub` removes JWTs (anything from ``eyJ``), ``Bearer`` credentials, the values of
sensitive query and form parameters (``?token=``, ``ticket=``, ``password=`` …), quoted
``"password": "…"`` pairs in reprs, and the password in ``scheme://user:password@host`` URLs.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_WORDS = (
    r"password|passwd|passphrase|pwd|token|ticket|secret|authori[sz]ation|cookie|api[_-]?key"
    r"|credential|private[_-]?key|otp"
)
# Words that make a field name (split at `_`, `-`, `.`) name a secret: `password`,
# `access_token`, `new_password`, `ticket`, `accessToken` …
_SECRET_PARTS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "token",
        "tokens",
        "ticket",
        "tickets",
        "secret",
        "secrets",
        "authorization",
        "authorisation",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "otp",
        "totp",
        "apikey",
        "privatekey",
    }
)
_SECRET_ENDINGS = ("password", "token", "secret", "ticket")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a JWT (base64url of '{"' is 'eyJ'), header to signature
    (re.compile(r"eyJ[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*){0,2}"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9_\-.~+/=]{8,}"), rf"\1 {REDACTED}"),
    # key=value in query strings, forms and key=value logs
    (
        re.compile(rf"(?i)((?:^|[?&;\s,(])[\w\-]*(?:{_SECRET_WORDS})s?=)[^&\s\"',;)]+"),
        rf"\1{REDACTED}",
    ),
    # "password": "…" or 'token': '…' in JSON and reprs
    (
        re.compile(rf"(?i)([\"'][\w\-]*(?:{_SECRET_WORDS})s?[\"']\s*:\s*)([\"'])(?:(?!\2).)*\2"),
        rf"\1\2{REDACTED}\2",
    ),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@\s/]+@"), rf"\1:{REDACTED}@"),
)


def scrub(text: str) -> str:
    """`text` with every recognisable secret replaced by ``[redacted]``."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def is_secret_key(name: str) -> bool:
    """True for a field name that says it holds a secret."""
    parts = [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]
    joined = "".join(parts)
    return (
        any(p in _SECRET_PARTS or p.endswith(_SECRET_ENDINGS) for p in parts)
        or "apikey" in joined
        or "privatekey" in joined
    )


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float) or depth > 4:
        return value
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(str(k)) and v is not None else _clean(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(_clean(v, depth + 1) for v in value)
    if isinstance(value, list | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    text = str(value)
    cleaned = scrub(text)
    return value if cleaned == text else cleaned


def scrub_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secret-named fields redacted, every other value scrubbed."""
    for key, value in list(event_dict.items()):
        if is_secret_key(key) and value is not None and not isinstance(value, bool):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _clean(value)
    return event_dict


def _scrub_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = scrub(record.msg)
    elif record.msg is not None:
        record.msg = _clean(record.msg)
    if isinstance(record.args, tuple):
        # keep the tuple's shape and the non-text values: formatters such as uvicorn's access
        # formatter unpack it and format the status code with %d
        record.args = tuple(_clean(a) for a in record.args)
    elif isinstance(record.args, Mapping):
        record.args = _clean(record.args)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


_installed = False


def install_scrubber() -> None:
    """Clean every stdlib log record of this process as it is created (idempotent)."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            _scrub_record(record)
        except Exception:  # a record that cannot be cleaned is not worth a crash; drop text
            record.msg, record.args = "[log record withheld: could not be scrubbed]", None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def configure(level: str = "INFO", *, json: bool = False) -> None:
    install_scrubber()
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
