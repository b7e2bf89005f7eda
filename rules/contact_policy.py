"""The ruleset's contact policy: the contact window, and beyond one window and one pair of limits, what delivery
receipts do, each channel's own window (per weekday) and caps, and blackout days."""
from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from schemas.types import by_weekday

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


class ContactWindow(_Strict):
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if isinstance(value, int):
            # YAML 1.1 reads an unquoted 08:00 as a base-60 number; ours does not, but hand-built dicts might.
            raise ValueError("write times as quoted \"HH:MM\"")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "ContactWindow":
        if self.start == self.end:
            raise ValueError("the contact window is empty: start equals end")
        return self

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class ChannelPolicy(_Strict):
    """One channel's own contact policy, on top of the account-wide window and limits. `window` per weekday (a day
    or a range: mon-fri, sat); a day it does not name has no contact on this channel. Caps count our sends and
    the contacts collectors and agencies record on the channel (contact.recorded) together."""

    window: dict[str, ContactWindow] | None = None
    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1, description="over any 7 consecutive local days")
    quiet_after_conversation: timedelta | None = Field(default=None, description="after a right-party "
                                                       "conversation, nothing on this channel for this long (7d)")

    @field_validator("quiet_after_conversation", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta | None:
        return None if value is None else duration(value)

    _by_weekday: tuple[ContactWindow | None, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _days(self) -> "ChannelPolicy":
        if self.window is not None:
            try:
                self._by_weekday = by_weekday(self.window)
            except ValueError as exc:
                raise ValueError(f"window.{exc}") from None
        return self

    def window_on(self, weekday: int) -> ContactWindow | None:
        """The day's window; None: no contact that day (only when the channel has a window at all)."""
        return self._by_weekday[weekday] if self._by_weekday is not None else None


class Blackout(_Strict):
    """Local days on which reminders, urgent notices and offers wait (holidays, the Spring Festival); handoffs and
    decisions go on. `calendar`: a file beside the ruleset, one YYYY-MM-DD a line, # comments (the loader reads it
    into `dates`)."""

    dates: list[date] = Field(default_factory=list, max_length=2000)
    calendar: str | None = None

    _days: frozenset[date] = PrivateAttr(default=frozenset())

    def model_post_init(self, context: Any) -> None:
        self._days = frozenset(self.dates)

    def __contains__(self, day: date) -> bool:
        return day in self._days
