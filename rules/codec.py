"""A compact binary codec for the engine's slotted dataclasses: msgpack arrays in field order, behind a version byte.

Built once per class from its type hints, as generated Python functions (the state of every touched account is
decoded and encoded once per batch, so this is on the hot path). Positional arrays keep a stored state small:
no field names, dates as day numbers, instants as epoch seconds and UTC offset, decimals as strings; a value over
COMPRESS_ABOVE bytes is lz4-compressed when that makes it smaller (long delinquency episodes hold case files of
repetitive lines). The version byte names the field layout: a change of layout gets a new
version, and `decode` refuses a value of another version rather than misreading it.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Generic, TypeVar

import cramjam
import msgpack

T = TypeVar("T")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class CodecError(ValueError):
    """A stored value this codec cannot read (another layout version, or not ours)."""


@lru_cache(maxsize=256)
def _offset_zone(seconds: int) -> timezone:
    return timezone.utc if seconds == 0 else timezone(timedelta(seconds=seconds))


def _dump_instant(value: datetime) -> list[int]:
    """[epoch seconds, UTC offset seconds] and the microseconds only when there are some."""
    offset = value.utcoffset()
    if offset is None:
        raise CodecError(f"naive datetime {value!r}: every instant must carry its offset")
    # From the fields, not value.timestamp(): that asks the tzinfo for the offset again (pydantic's TzInfo is a
    # call out of C each time), and a state holds a dozen instants or more: half the time of this function.
    offset_seconds = offset.days * 86400 + offset.seconds
    seconds = ((value.toordinal() - _EPOCH_ORDINAL) * 86400 + value.hour * 3600 + value.minute * 60 + value.second
               - offset_seconds)
    if value.microsecond:
        return [seconds, offset_seconds, value.microsecond]
    return [seconds, offset_seconds]


def _load_instant(stored: list[int]) -> datetime:
    instant = datetime.fromtimestamp(stored[0], _offset_zone(stored[1]))
    return instant.replace(microsecond=stored[2]) if len(stored) == 3 else instant


def _dump_day(value: date) -> int:
    return value.toordinal() - _EPOCH_ORDINAL


def _load_day(stored: int) -> date:
    return date.fromordinal(stored + _EPOCH_ORDINAL)


class _Generator:
    """Writes one dump and one load expression per field; nested dataclasses get functions of their own."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"_dump_instant": _dump_instant, "_load_instant": _load_instant,
                                      "_dump_day": _dump_day, "_load_day": _load_day, "Decimal": Decimal}
        self.done: set[type] = set()
        self.source: list[str] = []

    def expressions(self, hint: Any, var: str, depth: int = 0) -> tuple[str, str] | None:
        """(dump, load) expressions of `var` for a type; None where msgpack carries the value as it is."""
        origin = typing.get_origin(hint)
        inner = f"x{depth}"
        if origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            found = self.expressions(options[0], var, depth) if len(options) == 1 else None
            if found is None:
                return None  # plain scalars (str | int | bool | None) stay apart in msgpack
            dump, load = found
            return f"(None if {var} is None else {dump})", f"(None if {var} is None else {load})"
        if origin is list:
            found = self.expressions(typing.get_args(hint)[0], inner, depth + 1)
            if found is None:
                return f"list({var})", f"{var}"
            return f"[{found[0]} for {inner} in {var}]", f"[{found[1]} for {inner} in {var}]"
        if origin is dict:
            found = self.expressions(typing.get_args(hint)[1], inner, depth + 1)
            if found is None:
                return f"dict({var})", f"{var}"
            items = f"k{depth}, {inner} in {var}.items()"
            return f"{{k{depth}: {found[0]} for {items}}}", f"{{k{depth}: {found[1]} for {items}}}"
        if hint is Decimal:
            return f"str({var})", f"Decimal({var})"
        if hint is datetime:
            return f"_dump_instant({var})", f"_load_instant({var})"
        if hint is date:
            return f"_dump_day({var})", f"_load_day({var})"
        if dataclasses.is_dataclass(hint):
            self.define(hint)
            return f"_dump_{hint.__name__}({var})", f"_load_{hint.__name__}({var})"
        return None  # str, int, bool, Literal[...], Any of plain values

    def define(self, cls: type) -> None:
        if cls in self.done:
            return
        self.done.add(cls)
        self.names[cls.__name__] = cls
        hints = typing.get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        dumps, loads = [], []
        for position, name in enumerate(fields):
            found = self.expressions(hints[name], f"v.{name}")
            dumps.append(found[0] if found else f"v.{name}")
            stored = f"s[{position}]"
            found = self.expressions(hints[name], stored)
            loads.append(found[1] if found else stored)
        self.source.append(f"def _dump_{cls.__name__}(v):\n    return [{', '.join(dumps)}]\n")
        self.source.append(
            f"def _load_{cls.__name__}(s):\n"
            f"    if len(s) != {len(fields)}:\n"
            f"        raise CodecError('{cls.__name__}: ' + str(len(s)) + ' stored fields, the layout has {len(fields)}')\n"
            f"    return {cls.__name__}({', '.join(loads)})\n")

    def build(self, cls: type) -> tuple[Any, Any]:
        self.define(cls)
        namespace = {**self.names, "CodecError": CodecError}
        exec("\n".join(self.source), namespace)  # noqa: S102 - source generated above from type hints only
        return namespace[f"_dump_{cls.__name__}"], namespace[f"_load_{cls.__name__}"]


_COMPRESSED = 0x80  # the version byte's high bit: the msgpack bytes that follow are lz4-compressed
COMPRESS_ABOVE = 256  # bytes; below this lz4 gains little and costs a call


class Codec(Generic[T]):
    """Bytes for one dataclass type: a version byte, then msgpack, lz4-compressed when that makes it smaller.

    `upgrades` reads older layouts: version -> a function turning its stored array into the current layout's."""

    def __init__(self, cls: type[T], version: int,
                 upgrades: dict[int, Callable[[list[Any]], list[Any]]] | None = None):
        if not 0 < version < _COMPRESSED:
            raise ValueError("the version takes 7 bits")
        self.cls, self.version = cls, version
        self.upgrades = upgrades or {}
        self._dump, self._load = _Generator().build(cls)
        self._head, self._squeezed_head = bytes([version]), bytes([version | _COMPRESSED])
        self._packer = msgpack.Packer(use_bin_type=True)

    def encode(self, value: T) -> bytes:
        packed = self._packer.pack(self._dump(value))
        if len(packed) > COMPRESS_ABOVE:
            squeezed = cramjam.lz4.compress_block(packed)
            if len(squeezed) < len(packed):
                return self._squeezed_head + bytes(squeezed)
        return self._head + packed

    def decode(self, raw: bytes) -> T:
        head = raw[0] if raw else None
        version = None if head is None else head & ~_COMPRESSED
        if version != self.version and version not in self.upgrades:
            found = "nothing" if head is None else version
            raise CodecError(f"{self.cls.__name__}: stored layout version {found}, this code reads "
                             f"{', '.join(map(str, sorted([*self.upgrades, self.version])))}")
        body = memoryview(raw)[1:]
        if head & _COMPRESSED:
            body = cramjam.lz4.decompress_block(body)
        stored = msgpack.unpackb(body, raw=False)
        if version != self.version:
            stored = self.upgrades[version](stored)
        return self._load(stored)
