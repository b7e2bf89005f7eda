"""Field types shared by the event and notice contracts."""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, PlainSerializer, WithJsonSchema

_DECIMAL_RE = re.compile(r"^-?\d{1,15}(\.\d{1,6})?$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _parse_amount(value: Any) -> Decimal:
    # Floats are refused on purpose: a binary float cannot carry a cent exactly.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("amount must be a decimal string such as \"120.50\"")
    text = str(value)
    if not _DECIMAL_RE.match(text):
        raise ValueError(f"{text!r} is not a decimal amount such as \"120.50\"")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueError(f"{text!r} is not a decimal amount") from exc


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("amount must not be negative")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("amount must be greater than zero")
    return value


def _check_currency(value: str) -> str:
    if not _CURRENCY_RE.match(value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (three capital letters)")
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Asia" names a directory of zones
        raise ValueError(f"{value!r} is not an IANA time zone name") from exc
    return value


def _iso_date(value: Any) -> Any:
    # Pydantic alone would also take a Unix time (1798675200) or a full datetime and quietly truncate it.
    if isinstance(value, str) and not _DATE_RE.match(value):
        raise ValueError(f"{value!r} is not a date such as \"2026-12-31\" (YYYY-MM-DD)")
    if not isinstance(value, (str, date)):
        raise ValueError("a date is a string such as \"2026-12-31\" (YYYY-MM-DD)")
    return value


def _rfc3339(value: Any) -> Any:
    # Pydantic alone would also take a Unix time, as a number or a string of digits, and assume UTC.
    if isinstance(value, str) and not _TIMESTAMP_RE.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 time such as \"2026-12-01T09:00:00+08:00\"")
    if not isinstance(value, (str, datetime)):
        raise ValueError("a time is an RFC 3339 string with an offset, such as \"2026-12-01T09:00:00+08:00\"")
    return value


_AMOUNT_SCHEMA = WithJsonSchema({"type": "string", "pattern": _DECIMAL_RE.pattern, "examples": ["120.50"]})
_as_string = PlainSerializer(lambda d: format(d, "f"), return_type=str)

Amount = Annotated[Decimal, BeforeValidator(_parse_amount), AfterValidator(_non_negative), _as_string, _AMOUNT_SCHEMA]
PositiveAmount = Annotated[Decimal, BeforeValidator(_parse_amount), AfterValidator(_positive), _as_string, _AMOUNT_SCHEMA]
SignedAmount = Annotated[Decimal, BeforeValidator(_parse_amount), _as_string, _AMOUNT_SCHEMA]
Currency = Annotated[str, AfterValidator(_check_currency), WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$"})]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone), WithJsonSchema({"type": "string", "examples": ["Asia/Shanghai"]})]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
Day = Annotated[date, BeforeValidator(_iso_date)]

__all__ = ["Amount", "PositiveAmount", "SignedAmount", "Currency", "TimeZoneName", "Timestamp", "Day", "datetime"]
