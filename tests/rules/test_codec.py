"""The state codec's instants: every aware datetime comes back as the same instant with the same UTC offset."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st
from pydantic import TypeAdapter

from rules.codec import Codec, CodecError


@dataclass
class Stamped:
    at: datetime


CODEC = Codec(Stamped, 1)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets)


@given(instants)
def test_an_instant_comes_back_whole_with_its_offset(at: datetime) -> None:
    back = CODEC.decode(CODEC.encode(Stamped(at))).at
    assert back == at
    assert back.utcoffset() == at.utcoffset()
    assert back.microsecond == at.microsecond


@given(instants)
def test_an_instant_is_stored_as_its_epoch_second(at: datetime) -> None:
    stored = CODEC._dump(Stamped(at))[0]
    assert stored[0] == math.floor(at.timestamp())
    assert stored[1] == at.utcoffset() // timedelta(seconds=1)


def test_an_event_time_parsed_by_pydantic_is_stored_like_any_other() -> None:
    parsed = TypeAdapter(datetime).validate_json('"1969-12-31T23:59:59.5-05:00"')
    assert CODEC._dump(Stamped(parsed))[0] == [math.floor(parsed.timestamp()), -5 * 3600, 500000]
    assert CODEC.decode(CODEC.encode(Stamped(parsed))).at == parsed


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(CodecError, match="naive datetime"):
        CODEC.encode(Stamped(datetime(2026, 11, 3, 10, 15)))
