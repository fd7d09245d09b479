"""Value types of the API's edges: one definition per kind of value, used by every schema and
query parameter, so a rule (what a date may be, how far ahead a trip may depart) lives in one
place and the OpenAPI document shows it.

Request bodies are strict (`fleet.schemas.Strict`): a boolean is `true`/`false`, a number is
a JSON number, text is a string. The types here relax exactly what JSON cannot carry natively
and pin the format instead: dates and times are RFC 3339 strings (never epoch numbers), money
is a number or a decimal string with at most two decimals, a whole number may be written
`3.0`. Every date and time is bounded — absolutely (1970–2099, so arithmetic on it can never
overflow) and, where its meaning says so, relative to now (`Settings.limits`): a value beyond
the bounds is a 422 on that field with the reason, never a row that breaks reads later.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic.types import Strict as StrictMode
from pydantic_core import CoreSchema, core_schema

from fleet.clock import local_today
from fleet.config import LimitsSettings, get_settings
from fleet.errors import Conflict
from fleet.text import clean_text

# ---- numbers -------------------------------------------------------------------------------
# Bounds go before the marker (`Annotated[int, Field(ge=1), WHOLE]`), so that the schema carries
# them even on an optional field; a required one may also take them as `x: Whole = Field(...)`.

JSON_INT_MAX = 2**53 - 1
"""The largest integer every JSON client (IEEE doubles) holds exactly; below PostgreSQL's
bigint, so an id or offset within it is never a database error either."""


def _lax(schema: CoreSchema) -> CoreSchema:
    """The number schema without the body's strictness (the marker's check replaces it)."""
    return cast(CoreSchema, {**schema, "strict": False})


def _whole(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON Schema counts 3.0 as an integer
    if isinstance(value, str) and (info.config or {}).get("strict"):
        raise ValueError("expected a whole number, not a string")
    return value  # a path or query parameter arrives as its digits


@dataclass(frozen=True)
class WholeNumber:
    """Marker: an integer is a JSON number in a body (3 or 3.0, never "3" or true), its digits
    in a path or query string."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_info_before_validator_function(_whole, _lax(handler(source)))


@dataclass(frozen=True)
class DecimalNumber:
    """Marker: a non-negative decimal (money: 2 places, in yuan) is a JSON number or a decimal
    string with at most `places` decimals; the schema says both."""

    places: int = 2

    def _check(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a number, not a boolean")
        if isinstance(value, str) and not re.fullmatch(_decimal_text(self.places), value):
            raise ValueError(f"expected a decimal number with at most {self.places} decimals")
        if isinstance(value, float) and math.isfinite(value):
            # 0.57 arrives as 0.5700000000000001 from some clients: within float noise of a
            # step it is that step; anything further off keeps its digits and is refused.
            step = 10**self.places
            steps = round(value * step)
            if abs(value * step - steps) <= 8 * math.ulp(max(1.0, abs(value * step))):
                return Decimal(steps) / step
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, _lax(handler(source)))

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        branches = schema.get("anyOf", [schema])
        number: dict[str, Any] = next((b for b in branches if b.get("type") == "number"), {})
        for branch in branches:
            if branch is number:
                branch["multipleOf"] = 10**-self.places
            elif branch.get("type") == "string":
                branch["pattern"] = decimal_pattern(self.places, number)
        return schema


def _decimal_text(places: int) -> str:
    """A non-negative decimal string: no sign, no exponent, no leading zero, ≤ places decimals."""
    return rf"(0|[1-9][0-9]{{0,11}})(\.[0-9]{{1,{places}}})?"


def _int_upto(n: int) -> str:
    """A regex for the integers 0 … n without leading zeros."""
    digits = str(n)
    alts = ["0"] + [f"[1-9][0-9]{{{k - 1}}}" for k in range(1, len(digits))]
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            alts.append(f"{digits[:i]}[{low}-{int(d) - 1}][0-9]{{{len(digits) - i - 1}}}")
    alts.append(digits)
    return "(" + "|".join(alts) + ")"


def decimal_pattern(places: int, bounds: dict[str, Any]) -> str:
    """The decimal strings within the number branch's bounds (non-negative, integral upper
    bound), so that the string form of an amount is described as exactly as its number
    form: `^(…)$` over the integer part, the decimals and the edge values."""
    frac = rf"(\.[0-9]{{1,{places}}})?"
    upper = bounds.get("maximum", bounds.get("exclusiveMaximum"))
    if upper is None or upper != int(upper) or upper < 1:
        return f"^{_decimal_text(places)}$"
    top, inclusive = int(upper), "maximum" in bounds
    alts = [_int_upto(top - 1) + frac]
    if inclusive:
        alts.append(rf"{top}(\.0{{1,{places}}})?")
    pattern = "|".join(alts)
    if "exclusiveMinimum" in bounds and float(bounds["exclusiveMinimum"]) == 0:
        # Not zero: a non-zero integer part, or 0. followed by a non-zero decimal.
        nonzero = [f"0{{{i}}}[1-9][0-9]{{0,{places - i - 1}}}" for i in range(places)]
        positive = _int_upto(top - 1).replace("(0|", "(", 1) + frac
        pattern = "|".join([positive, rf"0\.({'|'.join(nonzero)})", *alts[1:]])
    return f"^({pattern})$"


WHOLE = WholeNumber()
MONEY = DecimalNumber(2)
LITRES = DecimalNumber(1)
Whole = Annotated[int, WHOLE]
Id = Annotated[int, Field(ge=1, le=JSON_INT_MAX), WHOLE]
"""A database row id in a path, query or body: 1 … 2^53 − 1."""
Money = Annotated[Decimal, MONEY]
"""An amount in yuan; bounds per field (`amount: Money = Field(ge=0, le=…)`)."""

# ---- text ----------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class CleanText:
    """Marker: free text people type (purposes, addresses, names, comments) loses its control
    characters on the way in (`fleet.text.clean_text`), before its length is checked, so
    exports and pages never meet them."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_clean, handler(source))


TEXT = CleanText()
Text = Annotated[str, TEXT]
"""Free text; bounds per field (`purpose: Text = Field(min_length=2, max_length=1000)`, or
`Annotated[str, Field(max_length=500), TEXT] | None` when optional)."""

# ---- dates and times -----------------------------------------------------------------------

FIRST_YEAR, LAST_YEAR = 1970, 2099
_YEAR = r"(19[7-9][0-9]|20[0-9][0-9])"
_MONTH_DAY = (
    r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
)
_LEAP_DAY = r"(19(7[26]|8[048]|9[26])|20([02468][048]|[13579][26]))-02-29"
_DATE = rf"({_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
_OFFSET = r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
DATE_PATTERN = rf"^{_DATE}$"
DATETIME_PATTERN = rf"^{_DATE}[Tt]{_TIME}{_OFFSET}$"
MONTH_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])$"


def _formatted(pattern: str, example: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, (date, datetime)):
            return value  # from Python (a test, a worker), not from the wire
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"expected {example}, years {FIRST_YEAR}–{LAST_YEAR}")
        return value

    return BeforeValidator(check)


@dataclass(frozen=True)
class _Described:
    """Adds a pattern and a sentence on the bound to the JSON schema of the type it annotates."""

    pattern: str
    note: str

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        schema["pattern"] = self.pattern
        schema["description"] = self.note
        return schema


Instant = Annotated[
    AwareDatetime,
    StrictMode(False),
    _formatted(
        DATETIME_PATTERN, "an RFC 3339 date-time with offset, e.g. 2026-12-03T08:30:00+08:00"
    ),
    _Described(DATETIME_PATTERN, "RFC 3339 date-time with offset, 1970–2099"),
]
"""A point in time: an RFC 3339 string with its offset (never a number), 1970–2099."""

Day = Annotated[
    date,
    StrictMode(False),
    _formatted(DATE_PATTERN, "a date YYYY-MM-DD"),
    _Described(DATE_PATTERN, "date YYYY-MM-DD, 1970–2099"),
]
"""A calendar day: YYYY-MM-DD, 1970–2099."""

Month = Annotated[
    str,
    _formatted(MONTH_PATTERN, "a month YYYY-MM"),
    _Described(MONTH_PATTERN, "month YYYY-MM (Asia/Shanghai), 1970–2099"),
]
"""A calendar month: YYYY-MM, 1970–2099."""


FIRST_INSTANT = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
END_INSTANT = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC)


def require_stored_in_range(what: str, field: str, *values: datetime) -> None:
    """Refuse (409) to compute with a stored time outside 1970–2099 — one written before the
    bounds, or by SQL — rather than overflow on it; the message says what to edit."""
    for value in values:
        if value.tzinfo is None or not FIRST_INSTANT <= value < END_INSTANT:
            raise Conflict(
                f"{what} is stored as {value.isoformat()}, outside {FIRST_YEAR}–{LAST_YEAR}; "
                "correct it first",
                field=field,
                code="stored_value_out_of_range",
            )


def limits() -> LimitsSettings:
    return get_settings().limits


def _within(value: Any, low: Any, high: Any, what: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{what}: between {low.isoformat()} and {high.isoformat()}")


def _trip_time(value: datetime) -> datetime:
    lim, now = limits(), datetime.now(UTC)
    low = now - timedelta(minutes=lim.trip_past_min)
    high = now + timedelta(days=lim.trip_ahead_days)
    if value < low:
        raise ValueError(f"lies in the past (more than {lim.trip_past_min} minutes ago)")
    if value > high:
        raise ValueError(f"lies more than {lim.trip_ahead_days} days ahead")
    return value


def _driver_time(value: datetime) -> datetime:
    lim, now = limits(), datetime.now(UTC)
    if value > now + timedelta(minutes=lim.driver_skew_min):
        raise ValueError(f"lies in the future (more than {lim.driver_skew_min} minutes ahead)")
    if value < now - timedelta(days=lim.driver_past_days):
        raise ValueError(f"lies more than {lim.driver_past_days} days ago")
    return value


def _window_time(value: datetime) -> datetime:
    lim, now = limits(), datetime.now(UTC)
    _within(
        value,
        now - timedelta(days=lim.window_past_days),
        now + timedelta(days=lim.trip_ahead_days),
        "a planning window lies near now",
    )
    return value


def _today() -> date:
    return local_today()  # the region's day: "today" for a cost is a Shanghai day


def _booked_day(value: date) -> date:
    lim, today = limits(), _today()
    if value > today + timedelta(days=1):
        raise ValueError("lies in the future")
    if value < today.replace(year=today.year - lim.cost_past_years, day=min(today.day, 28)):
        raise ValueError(f"lies more than {lim.cost_past_years} years back")
    return value


def _due_day(value: date) -> date:
    lim, today = limits(), _today()
    if value > today.replace(year=today.year + lim.due_ahead_years, day=min(today.day, 28)):
        raise ValueError(f"lies more than {lim.due_ahead_years} years ahead")
    return value


def _plan_day(value: date) -> date:
    lim, today = limits(), _today()
    _within(
        value,
        today - timedelta(days=lim.window_past_days + 1),
        today + timedelta(days=lim.trip_ahead_days),
        "a planning day lies near today",
    )
    return value


TripTime = Annotated[Instant, AfterValidator(_trip_time)]
"""A trip's departure: from a few minutes ago up to `limits.trip_ahead_days` ahead."""

DriverTime = Annotated[Instant, AfterValidator(_driver_time)]
"""When a driver departed/arrived/completed: not ahead of now (beyond clock skew), not more
than `limits.driver_past_days` back; the service also holds it near the trip's window
(`check_near_trip`)."""

WindowTime = Annotated[Instant, AfterValidator(_window_time)]
"""An auto-assign window's edge: near now, as far ahead as a trip may depart."""

BookedDay = Annotated[Day, AfterValidator(_booked_day)]
"""The day a cost was incurred or a service done: the last `limits.cost_past_years` years,
up to tomorrow (time zones)."""

DueDay = Annotated[Day, AfterValidator(_due_day)]
"""A next-service, policy-expiry or inspection date: up to `limits.due_ahead_years` ahead."""

PlanDay = Annotated[Day, AfterValidator(_plan_day)]
"""A local day to plan: yesterday up to as far ahead as a trip may depart."""


def check_near_trip(at: datetime, starts: datetime, ends: datetime) -> str | None:
    """Why a driver's reported time cannot belong to a booking of [starts, ends), if it cannot:
    further than `limits.driver_slack_h` outside the window."""
    slack = timedelta(hours=limits().driver_slack_h)
    try:
        low, high = starts - slack, ends + slack
    except OverflowError:
        return None  # a stored window of year 1/9999: nothing sensible to hold it to
    if not low <= at <= high:
        return (
            f"lies more than {limits().driver_slack_h} hours outside the trip's window "
            f"({starts.isoformat()} – {ends.isoformat()})"
        )
    return None


def month_span(first: str, last: str) -> int:
    """Months from `first` to `last` inclusive (both YYYY-MM)."""
    fy, fm = map(int, first.split("-"))
    ly, lm = map(int, last.split("-"))
    return (ly - fy) * 12 + (lm - fm) + 1
