"""The ruleset's contact policy beyond one window and one pair of limits: what delivery receipts do."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def duration(written: Any) -> timedelta:
    """30m, 2h, 7d."""
    found = _DURATION.match(written) if isinstance(written, str) else None
    if found is None:
        raise ValueError(f"{written!r} is not a duration such as 30m, 2h or 7d")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


class Retry(_Strict):
    """A temporary delivery failure is tried again on the same channel, after `after`, at most `times` times."""

    after: timedelta = Field(description="30m, 2h, 1d")
    times: int = Field(ge=1, le=10)

    @field_validator("after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return duration(value)


class DeliveryPolicy(_Strict):
    """Receipts from the notification services: a notice is remembered for `receipt_days` after it went, so that
    a failure can send it again (next channel, or a retry)."""

    receipt_days: int = Field(default=3, ge=1, le=30, description="how long a sent notice waits for its receipt")
    retry: Retry | None = Field(default=None, description="temporary failures; absent: the next channel at once")
