"""Values the command-line tools take: durations, RFC 3339 times, JSON-lines files."""
from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, TextIO, TypeVar

from pydantic import ValidationError

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 1h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; write e.g. 2026-12-01T00:00:00+08:00")
    return value


def read_jsonl(path: Path, parse: Callable[[bytes], T], describe: Callable[[ValidationError], str],
               errors: TextIO) -> tuple[list[T], int]:
    """The lines that parse, in file order, and how many did not (each reported with its line number)."""
    parsed, rejected = [], 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                parsed.append(parse(line))
            except ValidationError as exc:
                rejected += 1
                print(f"{path}:{number}: {describe(exc)}", file=errors)
    return parsed, rejected
