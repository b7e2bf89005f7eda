"""Field types shared by the event and notice contracts.

Every check here is a pydantic-core schema (patterns, bounds, conversions, custom errors): decoding an event
calls no Python function, which would otherwise be most of what decoding costs.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, GetCoreSchemaHandler, StringConstraints, WithJsonSchema
from pydantic_core import ErrorDetails, core_schema

DECIMAL_PATTERN = r"^-?\d{1,15}(\.\d{1,6})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}"
# Ids are Kafka keys (account_id), table keys and parts of notice ids, and the state keeps them: bounded so that an
# event's ids cannot make a state, notice or dead letter too large to send (an unbounded one stopped the worker at
# every restart). Lists of ids are bounded for the same reason.
ID_MAX_LENGTH = 200
MAX_IDS = 1000
_QUOTED_CHARS = 80  # of a refused value quoted in an error message
# Contact windows per weekday (a ruleset's channels.<name>.window, a customer's contact_hours): "HH:MM" local times.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_DAY_NAMES = "|".join(WEEKDAYS)
WEEKDAY_PATTERN = rf"^({_DAY_NAMES})(-({_DAY_NAMES}))?$"

# Errors whose message reads after the value the producer sent: "'usd' is not an ISO 4217 currency code".
_QUOTING_ERRORS = frozenset({"amount_text", "amount_sign", "currency_code", "date_text", "time_text", "clock_text",
                             "weekday_text"})


def error_path(loc: tuple[int | str, ...]) -> str:
    """The field an error is about, as dotted names, without pydantic's own steps (validator and union names)."""
    return ".".join(str(part) for part in loc if not str(part).startswith(("function-", "union[", "tagged-union[")))


def readable(error: ErrorDetails) -> str:
    """An error's message, with the offending value in front where the message expects it."""
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in _QUOTING_ERRORS:
        quoted = repr(error["input"])
        if len(quoted) > _QUOTED_CHARS:
            quoted = f"{quoted[:_QUOTED_CHARS]}... ({len(quoted)} characters)"
        return f"{quoted} {message}"
    return message


def weekdays(written: str) -> list[int]:
    """mon, or a range mon-fri (Monday is 0, as date.weekday())."""
    first, _, last = written.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise ValueError(f"{written!r} is not a weekday ({', '.join(WEEKDAYS)}) or a range of them such as mon-fri")
    low, high = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    if high < low:
        raise ValueError(f"{written!r}: the range runs backwards")
    return list(range(low, high + 1))


_Value = TypeVar("_Value")


def by_weekday(written: dict[str, _Value]) -> tuple[_Value | None, ...]:
    """Seven values, Monday first, from a map of days and ranges (mon-fri, sat); None for a day it does not name.
    A ValueError names the key at fault."""
    days: list[_Value | None] = [None] * 7
    for key, value in written.items():
        try:
            numbers = weekdays(key)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        for day in numbers:
            if days[day] is not None:
                raise ValueError(f"{key}: {WEEKDAYS[day]} is named twice")
            days[day] = value
    return tuple(days)


def _text(pattern: str, error_type: str, message: str) -> core_schema.CoreSchema:
    return core_schema.custom_error_schema(core_schema.str_schema(pattern=pattern), error_type,
                                           custom_error_message=message)


def _wire(text: core_schema.CoreSchema, native: core_schema.CoreSchema, checked: core_schema.CoreSchema,
          serialization: core_schema.SerSchema | None = None) -> core_schema.CoreSchema:
    """JSON carries text in a strict format, then converted by `checked`; Python may hand over the value itself."""
    from_text = core_schema.chain_schema([text, checked])
    from_python = core_schema.union_schema([core_schema.chain_schema([native, checked]), from_text],
                                           mode="left_to_right")
    return core_schema.json_or_python_schema(json_schema=from_text, python_schema=from_python,
                                             serialization=serialization)


@dataclass(frozen=True)
class _AmountType:
    """A decimal string ("120.50"); a JSON number is refused: a binary float cannot carry a cent exactly."""

    positive: bool  # False: zero or more

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        text = _text(DECIMAL_PATTERN, "amount_text", 'is not a decimal string such as "120.50"')
        if self.positive:
            bounded, message = core_schema.decimal_schema(allow_inf_nan=False, gt=0), "must be greater than zero"
        else:
            bounded, message = core_schema.decimal_schema(allow_inf_nan=False, ge=0), "must not be negative"
        checked = core_schema.custom_error_schema(bounded, "amount_sign", custom_error_message=message)
        as_text = core_schema.plain_serializer_function_ser_schema(lambda value: format(value, "f"),
                                                                   return_schema=core_schema.str_schema())
        return _wire(text, core_schema.is_instance_schema(Decimal), checked, as_text)


class _TimestampType:
    """RFC 3339 with an offset. Pydantic alone would also take a Unix time, as a number or digits, as UTC."""

    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        message = 'is not an RFC 3339 time with an offset, such as "2026-12-01T09:00:00+08:00"'
        text = _text(TIMESTAMP_PATTERN, "time_text", message)
        aware = core_schema.custom_error_schema(core_schema.datetime_schema(tz_constraint="aware"), "time_text",
                                                custom_error_message=message)
        return _wire(text, core_schema.datetime_schema(strict=True), aware)


class _DayType:
    """YYYY-MM-DD. Pydantic alone would also take a Unix time or a full datetime and quietly truncate it."""

    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        text = _text(DATE_PATTERN, "date_text", 'is not a date such as "2026-12-31" (YYYY-MM-DD)')
        return _wire(text, core_schema.date_schema(strict=True), core_schema.date_schema())


class _CurrencyType:
    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return _text(CURRENCY_PATTERN, "currency_code", "is not an ISO 4217 currency code (three capital letters)")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Asia" names a directory of zones
        raise ValueError(f"{value!r} is not an IANA time zone name") from exc
    return value


_AMOUNT_SCHEMA = WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["120.50"]})

Amount = Annotated[Decimal, _AmountType(positive=False), _AMOUNT_SCHEMA]
PositiveAmount = Annotated[Decimal, _AmountType(positive=True), _AMOUNT_SCHEMA]
Currency = Annotated[str, _CurrencyType, WithJsonSchema({"type": "string", "pattern": CURRENCY_PATTERN})]
Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX_LENGTH)]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_timezone),
                         WithJsonSchema({"type": "string", "maxLength": 64, "examples": ["Asia/Shanghai"]})]
Timestamp = Annotated[datetime, _TimestampType, WithJsonSchema({"type": "string", "format": "date-time"})]
Day = Annotated[date, _DayType, WithJsonSchema({"type": "string", "format": "date"})]


class _ClockType:
    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return _text(CLOCK_PATTERN, "clock_text", 'is not a local time such as "08:00" (HH:MM)')


class _WeekdaysType:
    @staticmethod
    def __get_pydantic_core_schema__(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return _text(WEEKDAY_PATTERN, "weekday_text", f"is not a weekday ({', '.join(WEEKDAYS)}) or a range of "
                     "them such as mon-fri")


ClockTime = Annotated[str, _ClockType, WithJsonSchema({"type": "string", "pattern": CLOCK_PATTERN,
                                                       "examples": ["08:00"]})]
Weekdays = Annotated[str, _WeekdaysType]  # a map's key: its JSON Schema is the map's patternProperties

__all__ = ["Amount", "PositiveAmount", "Currency", "Id", "TimeZoneName", "Timestamp", "Day", "ClockTime", "Weekdays", "error_path",
           "readable", "weekdays", "by_weekday", "WEEKDAYS", "ID_MAX_LENGTH", "MAX_IDS"]
