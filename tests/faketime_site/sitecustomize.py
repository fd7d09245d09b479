"""Loaded by the Python processes of a shifted-clock run only (tests/shifted.py puts this
folder on PYTHONPATH). libfaketime 0.9.10 turns Python's ``time.sleep`` — clock_nanosleep on
CLOCK_MONOTONIC with an absolute deadline — into EINVAL when monotonic clocks are left real
(FAKETIME_DONT_FAKE_MONOTONIC=1, which thread and lock timeouts need); sleep through select()
and its relative timeout instead."""

import os
import select
import time

if os.environ.get("FAKETIME"):
    _monotonic = time.monotonic

    def _sleep(secs: float) -> None:
        if secs < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = _monotonic() + secs
        while (left := deadline - _monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
