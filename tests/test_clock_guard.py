"""The clock guard: the date-sensitive tests, re-run under a shifted clock in `make test`.

A suite that passes at 15:00 UTC may fail at 15:30 UTC — 23:30 in Shanghai, where "today"
turns into tomorrow (issue 9: the auditor's default range hid a trip filed just before
midnight). These tests run again in a subprocess under libfaketime (tests/shifted.py, with a
private PostgreSQL server shifted alike) just before and just after Shanghai midnight of
the current day. The full suite at any moment: docs/operations.md, *Testing at any hour*.
"""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta

import pytest

from tests import shifted

# Tests whose outcome depended on the hour, or that read "today" / "now" on both the client
# and the server side (browser, API, SQL now()).
# The browser test last: Playwright's sync API keeps an event loop running in the test
# thread, and the database fixtures the others need must be made before it starts.
BEFORE_MIDNIGHT = (
    "tests/fleet/test_local_day.py",
    "tests/telematics/rules/test_working_time.py::test_calendar_holidays_and_adjusted_working_days",
    "tests/web/test_browser.py::test_trip_flow_through_the_ui",
)
AFTER_MIDNIGHT = (
    "tests/fleet/test_local_day.py",
    "tests/dispatch/test_costs.py::test_service_records_due_dates_and_reminders",
    "tests/fleet/test_holidays.py",
    "tests/web/test_browser.py::test_trip_flow_through_the_ui",
)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("moment", "tests"),
    [
        (time(23, 45), BEFORE_MIDNIGHT),
        (time(0, 15), AFTER_MIDNIGHT),
    ],
    ids=["23:45", "00:15"],
)
def test_date_sensitive_tests_pass_around_shanghai_midnight(
    moment: time, tests: tuple[str, ...]
) -> None:
    if os.environ.get("FAKETIME"):
        pytest.skip("already under a shifted clock")
    if shifted.libfaketime() is None:
        pytest.fail("libfaketime is missing: run scripts/setup.sh --test (Debian package faketime)")
    today = datetime.now(shifted.SHANGHAI).date()
    day = today + timedelta(days=1) if moment < time(12) else today
    at = datetime.combine(day, moment, shifted.SHANGHAI)
    rc = shifted.run(at, ["-q", "-p", "no:cacheprovider", "-x", *tests])
    assert rc == 0, f"the date-sensitive tests failed at {at.isoformat()} (output above)"
