"""Invalid events of every type, made the ways producers get them wrong, through the worker's own path.

Hypothesis breaks each valid sample of test_event_contract.VALID (every event type and arrangement kind) at one
place, read from the model's own JSON Schema: a required field missing; a value of the wrong JSON type (a float
for money, an object for an id); a string against its pattern, format, enum or length (a naive timestamp, a
currency in lower case, a negative or 16-digit amount, an unknown reason, an id of a megabyte); a list too short or
too long or with a bad entry; an extra field in an installment. Or the bytes themselves: cut short, with a byte
that is not UTF-8, with something after the object, not an object at all, empty, NULL. Each goes through
Processor.process as a Kafka message on the event's own topic, key and partition, after a batch that gave the
account and the partition some state. Each must give exactly one dead letter, with the original bytes (their
start, length and hash when the letter is truncated), the origin and the expected reason, and nothing else: no
exception, no notice, no audit line, no state written. Valid variants of the samples (any ids up to the limit, any
amounts and currencies) are never dead-lettered.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_event_contract import VALID

from rules.engine import Engine
from rules.loader import load_ruleset
from schemas.events import PLATFORM_ACCOUNT, parse_event
from schemas.types import CURRENCY_PATTERN, DECIMAL_PATTERN, ID_MAX_LENGTH, MAX_IDS
from streams.runtime.processor import Processor, Source, partition_for
from streams.runtime.settings import TopicNames

REPO = Path(__file__).resolve().parents[2]
TOPICS = TopicNames()
PARTITIONS = 4
LIMIT = 250_000  # the worker's dead-letter bound (a quarter of the producer's request limit)
SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])
ENGINE = Engine(load_ruleset(REPO / "rules" / "default.yaml"))
SCHEMAS = {name: type(parse_event(json.dumps(raw))).model_json_schema() for name, raw in VALID.items()}


def literals(schema: Any) -> set[str]:
    """Every const and enum value in a schema: a wrong value must not be another type's or kind's name."""
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= {schema["const"]} if "const" in schema else set()
        found |= set(schema.get("enum", ()))
        for value in schema.values():
            found |= literals(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= literals(value)
    return found


KNOWN_WORDS = set().union(*(literals(schema) for schema in SCHEMAS.values()))


# --------------------------------------------------------------------------------------------- the worker's path

class World:
    """A Processor over dict tables, with account A1 and every clock partition already holding state."""

    def __init__(self) -> None:
        self.processor = Processor(ENGINE, TOPICS, PARTITIONS)
        self.accounts: dict[str, bytes] = {}
        self.platforms: dict[str, bytes] = {}
        self.offset = 0
        history = [VALID["invoice.issued"], {**VALID["clock.tick"], "event_id": "tick-1"}]
        for raw in history:
            self.send(json.dumps(raw).encode(), raw)
        result = self.processor.finish_batch()
        assert not result.dead_letters and result.accounts and result.platforms
        self.accounts.update({key: value for key, (value, _) in result.accounts.items()})
        self.platforms.update({key: value for key, (value, _) in result.platforms.items()})

    def source(self, value: bytes | None, sample: dict[str, Any]) -> Source:
        """Where a producer would put the sample: its type's topic, keyed by its account, murmur2 partition."""
        account = sample["account_id"]
        partition = 1 if account == PLATFORM_ACCOUNT else partition_for(account, PARTITIONS)
        self.offset += 1
        return Source(TOPICS.for_event_type(sample["type"]), partition, self.offset, account.encode(), value,
                      1_760_000_000_000)

    def send(self, value: bytes | None, sample: dict[str, Any]) -> Source:
        source = self.source(value, sample)
        self.processor.process(source, self.accounts, self.platforms, lambda: iter(list(self.accounts.items())))
        return source


WORLD = World()


def assert_dead_lettered(value: bytes | None, sample: dict[str, Any], reason: str) -> None:
    source = WORLD.send(value, sample)
    result = WORLD.processor.finish_batch()
    [letter] = result.dead_letters
    assert letter.reason == reason, (letter.reason, letter.message, letter.errors)
    assert (letter.origin.topic, letter.origin.partition, letter.origin.offset) == (
        source.topic, source.partition, source.offset)
    [out] = result.outgoing  # the dead letter and nothing else: no notice, no audit line
    assert out.topic == TOPICS.dead_letter and len(out.key) + len(out.value) <= LIMIT
    assert (result.accounts, result.platforms, result.notices, dict(result.types)) == ({}, {}, [], {})
    if value is None:
        assert letter.value_base64 is None and letter.value_length is None
        return
    kept = base64.b64decode(letter.value_base64)
    assert (letter.value_length, letter.value_sha256) == (len(value), hashlib.sha256(value).hexdigest())
    assert kept == value if not letter.truncated else value.startswith(kept) and len(kept) < len(value)
    assert letter.message and (letter.errors or reason == "empty")


# --------------------------------------------------------------------------------------------- breaking a value

def resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return defs[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def alternatives(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(alt, defs) for alt in schema.get("anyOf", [schema])]


def json_types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    return {alt.get("type", "string" if "const" in alt or "enum" in alt else "object")
            for alt in alternatives(schema, defs)}


# A value of each JSON type, by type: a field of none of its types gets one of them.
WRONG_TYPES = {
    "string": st.sampled_from(["", "x", "12"]),
    "integer": st.integers(-10**6, 10**6),
    "number": st.integers(-10**6, 10**6).map(lambda n: n + 0.5),
    "boolean": st.booleans(),
    "null": st.none(),
    "array": st.lists(st.integers(), max_size=2),
    "object": st.dictionaries(st.sampled_from(["a", "amount"]), st.integers(), max_size=2),
}
BAD_AMOUNTS = st.one_of(
    st.floats(min_value=0.01, max_value=1e9).map(lambda f: ("a JSON float for money", f)),
    st.integers(1, 10**9).map(lambda n: ("a JSON integer for money", n)),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**9), places=2).map(
        lambda d: ("a negative amount", f"-{d}")),
    st.integers(10**15, 10**30).map(lambda n: ("more than 15 digits", f"{n}.00")),
    st.integers(1, 10**6).map(lambda n: ("more than 6 decimals", f"1.{n:07d}")),
    st.sampled_from(["1e3", "NaN", "Infinity", "12,00", "$12.00", " 12.00", "12.", ".5", "", "twelve"]).map(
        lambda s: ("not a decimal string", s)),
)
BAD_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(
        lambda t: ("a naive timestamp", t.isoformat())),
    st.dates().map(lambda d: ("a date for a time", d.isoformat())),
    st.sampled_from(["2026-13-01T10:00:00+08:00", "2026-10-01T25:00:00Z", "2026-10-01T10:00:00+25:00", "now",
                     "1760000000", ""]).map(lambda s: ("not a time", s)),
)
BAD_DAYS = st.one_of(
    st.dates().map(lambda d: ("day/month/year", d.strftime("%d/%m/%Y"))),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda t: ("a time for a date", t.isoformat())),
    st.sampled_from(["2026-02-30", "2026-00-10", "20261001", "tomorrow", ""]).map(lambda s: ("not a date", s)),
)
BAD_CURRENCIES = st.one_of(
    st.sampled_from(["usd", "US", "USDX", "U$D", "€", "", "cny "]).map(lambda s: ("not an ISO 4217 code", s)),
    st.text(max_size=8).filter(lambda s: not re.fullmatch(CURRENCY_PATTERN, s)).map(lambda s: ("a bad code", s)),
)


def bad_values(schema: dict[str, Any], defs: dict[str, Any], present: Any) -> st.SearchStrategy:
    """(what, value) pairs that the field described by `schema` refuses; `present` is its valid value, if any."""
    types = json_types(schema, defs)
    options = [st.tuples(st.just(f"a JSON {kind} for a {'/'.join(sorted(types))}"), strategy)
               for kind, strategy in WRONG_TYPES.items()
               if kind not in types and not (kind == "integer" and "number" in types)
               and not (kind == "number" and "integer" in types)]
    for alt in alternatives(schema, defs):
        kind = alt.get("type")
        if "const" in alt or "enum" in alt:
            allowed = {alt["const"]} if "const" in alt else set(alt["enum"])
            options.append(st.text(max_size=30).filter(lambda s: s not in KNOWN_WORDS).map(
                lambda s: ("a value not in the enum", s)))
            options.append(st.sampled_from(sorted(allowed)).map(lambda s: ("an enum value in capitals", s.upper()))
                           .filter(lambda pair: pair[1] not in KNOWN_WORDS))
        elif alt.get("pattern") == DECIMAL_PATTERN:
            options.append(BAD_AMOUNTS)
        elif alt.get("pattern") == CURRENCY_PATTERN:
            options.append(BAD_CURRENCIES)
        elif alt.get("format") == "date-time":
            options.append(BAD_TIMES)
        elif alt.get("format") == "date":
            options.append(BAD_DAYS)
        elif kind == "string":
            if "maxLength" in alt:
                longest = alt["maxLength"]
                options.append(st.sampled_from([longest + 1, 5 * longest, 1_000_000]).map(
                    lambda n: (f"a string of {n} characters", "i" * n)))
            if alt.get("minLength", 0) > 0:
                options.append(st.just(("an empty string", "")))
        elif kind == "integer":
            if "minimum" in alt:
                options.append(st.integers(max_value=alt["minimum"] - 1).map(lambda n: ("below the minimum", n)))
            if "maximum" in alt:
                options.append(st.integers(min_value=alt["maximum"] + 1).map(lambda n: ("above the maximum", n)))
        elif kind == "array" and isinstance(present, list) and present:
            if alt.get("minItems", 0) > 0:
                options.append(st.just(("an empty list", [])))
            if "maxItems" in alt:
                options.append(st.just((f"{alt['maxItems'] + 1} entries", present * (alt["maxItems"] + 1))))
            items = resolve(alt["items"], defs)
            options.append(st.tuples(st.integers(0, len(present) - 1), bad_values(items, defs, present[0])).map(
                lambda pick: (f"entry {pick[0]}: {pick[1][0]}",
                              present[:pick[0]] + [pick[1][1]] + present[pick[0] + 1:])))
        elif kind == "object" and isinstance(present, dict):
            options.append(bad_object(alt, defs, present))
    return st.one_of(options)


def bad_object(schema: dict[str, Any], defs: dict[str, Any], present: dict[str, Any]) -> st.SearchStrategy:
    """A JSON object of this schema broken at one place: a required field missing, a field wrong, an extra field
    where none are allowed."""
    options = []
    required = [name for name in schema.get("required", ()) if name in present]
    if required:
        options.append(st.sampled_from(required).map(
            lambda name: (f"{name} missing", {k: v for k, v in present.items() if k != name})))
    if schema.get("additionalProperties") is False:
        options.append(st.just(("an extra field", {**present, "note": "x"})))
    if "patternProperties" in schema and present:  # a map (a statement's credit per currency): a bad entry
        (pattern, values), = schema["patternProperties"].items()
        key = sorted(present)[0]
        other = key.lower() if key.lower() != key else key.upper()  # CNY -> cny, mon-fri -> MON-FRI
        options.append(st.just(("a key not matching " + pattern, {**present, other: present[key]})))
        options.append(bad_values(values, defs, present[key]).map(
            lambda bad: (f"{key}: {bad[0]}", {**present, key: bad[1]})))
        return st.one_of(options)
    if isinstance(schema.get("additionalProperties"), dict) and present:  # a map by id (contact_hours per channel)
        key = sorted(present)[0]
        options.append(bad_values(resolve(schema["additionalProperties"], defs), defs, present[key]).map(
            lambda bad: (f"{key}: {bad[0]}", {**present, key: bad[1]})))
        return st.one_of(options)
    fields = sorted(schema["properties"])
    options.append(st.sampled_from(fields).flatmap(lambda name: bad_values(
        schema["properties"][name], defs, present.get(name)).map(
        lambda bad: (f"{name}: {bad[0]}", {**present, name: bad[1]}))))
    return st.one_of(options)


@st.composite
def broken_events(draw) -> tuple[str, dict[str, Any], str, bytes | None, str]:
    """(sample name, its valid fields, what was broken, the message value, the dead letter's reason)."""
    name = draw(st.sampled_from(sorted(VALID)))
    sample, schema = VALID[name], SCHEMAS[name]
    raw = json.dumps(sample).encode()
    how = draw(st.sampled_from(["field", "field", "field", "bytes", "shape", "empty"]))
    if how == "field":
        what, broken = draw(bad_object(schema, schema.get("$defs", {}), copy.deepcopy(sample)))
        return name, sample, what, json.dumps(broken).encode(), "invalid_event"
    if how == "bytes":
        cut = draw(st.integers(1, len(raw) - 1))
        at = draw(st.integers(0, len(raw)))
        what, value = draw(st.sampled_from([
            ("cut short", raw[:cut]),
            ("a byte that is not UTF-8", raw[:at] + b"\xff" + raw[at:]),
            ("a UTF-8 sequence cut inside a string", raw.replace(b'"type": "', b'"type": "\xc3', 1)),
            ("something after the object", raw + draw(st.sampled_from([b"}", b"x", b",{}", b"\x00"]))),
        ]))
        return name, sample, what, value, "malformed_json"
    if how == "shape":
        what, value = draw(st.sampled_from([
            ("an array", json.dumps([sample]).encode()), ("a string", json.dumps(json.dumps(sample)).encode()),
            ("a number", b"42"), ("JSON null", b"null"), ("true", b"true"), ("an empty object", b"{}")]))
        return name, sample, what, value, "invalid_event"
    what, value = draw(st.sampled_from([("a NULL value", None), ("an empty value", b"")]))
    return name, sample, what, value, "empty"


@SETTINGS
@given(broken_events())
def test_an_invalid_event_gives_one_dead_letter_with_its_bytes_origin_and_reason_and_changes_nothing(case):
    name, sample, what, value, reason = case
    event(f"{reason}: {re.sub(r'[0-9]+', 'N', what)}")  # --hypothesis-show-statistics: what was tried
    assert_dead_lettered(value, sample, reason)


# --------------------------------------------------------------------------------------------- valid variants

# "*" is the platform's account: an account event for it is dead-lettered key_mismatch
IDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=ID_MAX_LENGTH).filter(
    lambda text: text != PLATFORM_ACCOUNT)


def vary(value: Any, schema: dict[str, Any], defs: dict[str, Any], draw) -> Any:
    """The same sample with other valid ids, amounts and currencies (dates and times kept: some depend on each
    other)."""
    alt = next((a for a in alternatives(schema, defs) if a.get("type") != "null"), {})
    if isinstance(value, list) and "items" in alt:
        return [vary(item, resolve(alt["items"], defs), defs, draw) for item in value]
    if isinstance(value, dict):
        return {key: vary(item, alt.get("properties", {}).get(key, {}), defs, draw) for key, item in value.items()}
    if alt.get("maxLength") == ID_MAX_LENGTH:
        return draw(IDS)
    if alt.get("pattern") == DECIMAL_PATTERN:
        return str(draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**15) - 1, places=2)))
    if alt.get("pattern") == CURRENCY_PATTERN:
        return draw(st.from_regex(r"\A[A-Z]{3}\Z"))
    return value


@st.composite
def valid_events(draw) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(VALID)))
    schema = SCHEMAS[name]
    varied = vary(VALID[name], schema, schema.get("$defs", {}), draw)
    if VALID[name]["account_id"] == PLATFORM_ACCOUNT:
        varied["account_id"] = PLATFORM_ACCOUNT  # a platform event is for every account, always
    return varied


@settings(max_examples=150, deadline=None)
@given(valid_events())
def test_valid_events_are_never_dead_lettered(sample):
    WORLD.send(json.dumps(sample).encode(), sample)
    result = WORLD.processor.finish_batch()
    assert result.dead_letters == [] and dict(result.types) == {sample["type"]: 1}
    WORLD.accounts.update({key: value for key, (value, _) in result.accounts.items()})
    WORLD.platforms.update({key: value for key, (value, _) in result.platforms.items()})


# --------------------------------------------------------------------------------------------- id limits

def bounded_id(spec: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """"id" for a string bounded at ID_MAX_LENGTH, "ids" for a list of them bounded at MAX_IDS, else None."""
    for alt in alternatives(spec, defs):
        if alt.get("type") == "string" and alt.get("maxLength") == ID_MAX_LENGTH and alt.get("minLength") == 1:
            return "id"
        if alt.get("type") == "array" and alt.get("maxItems") == MAX_IDS and bounded_id(alt["items"], defs):
            return "ids"
    return None


def id_fields() -> list[tuple[str, str]]:
    """(sample, field) for every id or list of ids a sample carries."""
    return [(name, field) for name, schema in SCHEMAS.items() for field, spec in schema["properties"].items()
            if field in VALID[name] and bounded_id(spec, schema.get("$defs", {}))]


def test_every_id_is_bounded():
    """Fields named *_id or *_ids, and channel names, are ids (a platform event's account_id is always "*")."""
    named = {(name, field) for name, schema in SCHEMAS.items() for field, spec in schema["properties"].items()
             if field in VALID[name] and field.endswith(("_id", "_ids", "channels")) and "const" not in spec}
    assert named - set(id_fields()) == set(), "use schemas.types.Id, or list[Id] with max_length=MAX_IDS"


@pytest.mark.parametrize("name, field", id_fields())
def test_an_id_may_have_200_characters_and_not_one_more(name, field):
    sample, schema = VALID[name], SCHEMAS[name]
    listed = bounded_id(schema["properties"][field], schema.get("$defs", {})) == "ids"
    longest = ["é" * ID_MAX_LENGTH] if listed else "é" * ID_MAX_LENGTH
    too_long = [longest[0] + "x"] if listed else longest + "x"
    assert getattr(parse_event(json.dumps({**sample, field: longest})), field) == longest
    assert_dead_lettered(json.dumps({**sample, field: too_long}).encode(), sample, "invalid_event")


def test_a_megabyte_id_is_dead_lettered_naming_the_field():
    sample = VALID["payment.received"]
    value = json.dumps({**sample, "payment_id": "P" * 1_000_000}).encode()
    assert_dead_lettered(value, sample, "invalid_event")
    WORLD.send(value, sample)
    [letter] = WORLD.processor.finish_batch().dead_letters
    assert letter.truncated and letter.errors == ["payment.received.payment_id: String should have at most 200 "
                                                  "characters"]


def test_lists_of_ids_are_bounded():
    sample = VALID["arrangement.agreed/extension"]
    assert len(parse_event(json.dumps({**sample, "invoice_ids": ["I1"] * MAX_IDS})).invoice_ids) == MAX_IDS
    assert_dead_lettered(json.dumps({**sample, "invoice_ids": ["I1"] * (MAX_IDS + 1)}).encode(), sample,
                         "invalid_event")
