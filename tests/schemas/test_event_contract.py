"""The input event contract, as a producer sees it: JSON in, a typed event or a validation error out."""
from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import events
from schemas.events import EVENT_TYPES, describe_errors, parse_event

ENVELOPE = {"event_id": "evt-1", "account_id": "A1", "occurred_at": "2026-12-01T09:30:00+08:00"}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {**ENVELOPE, "type": type_, **fields}


# One valid event per type (and per arrangement kind), written as a producer would.
VALID: dict[str, dict[str, Any]] = {
    "invoice.issued": event("invoice.issued", invoice_id="I1", amount="120.50", currency="CNY",
                            due_date="2026-12-31"),
    "invoice.adjusted": event("invoice.adjusted", invoice_id="I1", amount="100.00"),
    "invoice.cancelled": event("invoice.cancelled", invoice_id="I1"),
    "payment.received": event("payment.received", payment_id="P1", amount="20.50", currency="CNY",
                              invoice_id="I1"),
    "payment.failed": event("payment.failed", payment_id="P2", amount="120.50", currency="CNY",
                            reason="insufficient_funds", attempt=2),
    "arrangement.agreed/extension": event("arrangement.agreed", arrangement_id="R1", kind="extension",
                                          new_due_date="2027-01-15", invoice_ids=["I1"]),
    "arrangement.agreed/promise_to_pay": event("arrangement.agreed", arrangement_id="R2", kind="promise_to_pay",
                                               promised_date="2027-01-05", amount="60.00"),
    "arrangement.agreed/installments": event(
        "arrangement.agreed", arrangement_id="R3", kind="installments", invoice_ids=["I1"],
        schedule=[{"due_date": "2027-01-10", "amount": "60.25"}, {"due_date": "2027-02-10", "amount": "60.25"}]),
    "arrangement.agreed/settlement": event("arrangement.agreed", arrangement_id="R4", kind="settlement",
                                           amount="84.35", by_date="2027-01-20", currency="CNY", invoice_ids=["I1"],
                                           offer_id="n-0f3c"),
    "arrangement.cancelled": event("arrangement.cancelled", arrangement_id="R1"),
    "debt.written_off": event("debt.written_off", invoice_ids=["I1"], reason="bankruptcy"),
    "dispute.opened": event("dispute.opened", invoice_id="I1"),
    "dispute.resolved": event("dispute.resolved", invoice_id="I1"),
    "account.updated": event("account.updated", risk_tier="high", timezone="America/New_York",
                             channels=["app_push", "sms"], opted_out_channels=["email"],
                             contact_hours={"*": {"mon-fri": {"start": "18:00", "end": "21:00"}},
                                            "call": {"sat": {"start": "10:00", "end": "12:00"}}}),
    "platform.outage": event("platform.outage", account_id="*", outage_id="O1", start="2026-12-01T00:00:00Z",
                             end="2026-12-01T06:00:00Z", grace_days=2),
    "clock.tick": event("clock.tick", account_id="*", at="2026-12-01T10:00:00+08:00"),
    "account.flagged": event("account.flagged", flag="breathing_space", until="2027-01-29", reference="BS-2026-118"),
    "account.unflagged": event("account.unflagged", flag="breathing_space", reference="BS-2026-118"),
    "account.statement": event("account.statement", as_of="2026-12-01T00:00:00+08:00",
                               invoices=[{"invoice_id": "I1", "amount_due": "100.00", "currency": "CNY",
                                          "due_date": "2026-12-31"}], credit={"CNY": "20.00"}),
    "notice.delivered": event("notice.delivered", notice_id="n-0f3c", channel="sms"),
    "notice.failed": event("notice.failed", notice_id="n-0f3c", channel="email", reason="bounced", permanent=True),
    "contact.recorded": event("contact.recorded", channel="call", by="agency", outcome="right_party"),
}

# Fields a producer may leave out; every other field of a VALID sample is required.
OPTIONAL: dict[str, set[str]] = {
    "payment.received": {"invoice_id"},
    "payment.failed": {"invoice_id", "attempt"},
    "arrangement.agreed/extension": {"invoice_ids", "currency"},
    "arrangement.agreed/promise_to_pay": {"currency"},
    "arrangement.agreed/installments": {"invoice_ids", "currency"},
    "arrangement.agreed/settlement": {"invoice_ids", "currency", "offer_id"},
    "debt.written_off": {"invoice_ids"},
    "account.updated": {"risk_tier", "timezone", "channels", "opted_out_channels", "contact_hours"},
    "platform.outage": {"account_id"},
    "account.flagged": {"until", "reference"},
    "account.unflagged": {"reference"},
    "account.statement": {"credit"},
}


def parse(raw: dict[str, Any]):
    return parse_event(json.dumps(raw).encode())


def rejected(raw: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        parse(raw)
    return caught.value.errors()


def rejected_field(raw: dict[str, Any]) -> set[str]:
    """The last path element of each error: the field the producer got wrong."""
    return {str(error["loc"][-1]) for error in rejected(raw) if error["loc"]}


def with_field(name: str, field: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID[name])
    raw[field] = value
    return raw


def test_the_samples_cover_every_event_type():
    assert {name.split("/")[0] for name in VALID} == set(EVENT_TYPES)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_event_parses_and_keeps_what_the_producer_wrote(name):
    raw = VALID[name]
    parsed = parse(raw)
    assert parsed.type == raw["type"]
    dumped = json.loads(parsed.model_dump_json())
    # Amounts, dates and timestamps come back exactly as written: "120.50" stays "120.50", +08:00 stays +08:00.
    assert {key: dumped[key] for key in raw} == raw


@pytest.mark.parametrize("name", sorted(VALID))
def test_parsing_is_the_same_from_bytes_and_from_str(name):
    text = json.dumps(VALID[name])
    assert parse_event(text) == parse_event(text.encode())


def test_amounts_are_decimals_not_floats():
    invoice = parse(VALID["invoice.issued"])
    assert isinstance(invoice.amount, Decimal)
    assert invoice.amount == Decimal("120.50")
    plan = parse(VALID["arrangement.agreed/installments"])
    assert sum(item.amount for item in plan.schedule) == Decimal("120.50")


@pytest.mark.parametrize("name, path", [
    ("invoice.issued", ["amount"]),
    ("invoice.adjusted", ["amount"]),
    ("payment.received", ["amount"]),
    ("payment.failed", ["amount"]),
    ("arrangement.agreed/promise_to_pay", ["amount"]),
    ("arrangement.agreed/installments", ["schedule", 0, "amount"]),
])
@pytest.mark.parametrize("number", [120.5, 100.0, 0.1, 1e2])
def test_a_json_number_with_a_fraction_is_refused_as_money(name, path, number):
    raw = copy.deepcopy(VALID[name])
    target = raw
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = number
    errors = rejected(raw)
    assert [error["loc"][-len(path):] for error in errors] == [tuple(path)]
    assert "decimal string" in errors[0]["msg"]


@pytest.mark.parametrize("amount", ["1e3", "1,000.00", "12.3.4", "", " 12.00", "12.", ".50", "NaN", "Infinity",
                                    "1.0000001", True, None, ["1.00"]])
def test_malformed_amounts_are_refused(amount):
    assert rejected_field(with_field("invoice.issued", "amount", amount)) == {"amount"}


def test_negative_and_zero_amounts():
    assert rejected_field(with_field("invoice.issued", "amount", "-5.00")) == {"amount"}
    assert rejected_field(with_field("payment.received", "amount", "0.00")) == {"amount"}
    assert rejected_field(with_field("payment.failed", "amount", "0")) == {"amount"}
    # A credit note can bring an invoice down to nothing.
    assert parse(with_field("invoice.adjusted", "amount", "0.00")).amount == Decimal("0")


@pytest.mark.parametrize("currency", ["cny", "CN", "CNYY", "¥", "US$", "", 156])
def test_currency_must_be_an_iso_4217_code(currency):
    assert rejected_field(with_field("invoice.issued", "currency", currency)) == {"currency"}


@pytest.mark.parametrize("day", ["2026/12/31", "31-12-2026", "20261231", "2026-12-31T00:00:00Z", "2026-02-30",
                                 "2026-13-01", 1798675200, ""])
def test_dates_are_yyyy_mm_dd(day):
    assert rejected_field(with_field("invoice.issued", "due_date", day)) == {"due_date"}


@pytest.mark.parametrize("name, field", [
    ("invoice.issued", "occurred_at"),
    ("clock.tick", "at"),
    ("platform.outage", "start"),
    ("platform.outage", "end"),
])
@pytest.mark.parametrize("value", ["2026-12-01T09:30:00", "2026-12-01 09:30:00", "2026-12-01", 1798675200,
                                   "1798675200", "yesterday"])
def test_timestamps_need_rfc3339_with_an_offset(name, field, value):
    assert field in rejected_field(with_field(name, field, value))


def test_timestamp_offset_is_kept():
    parsed = parse(with_field("invoice.issued", "occurred_at", "2026-12-01T09:30:00+08:00"))
    assert parsed.occurred_at.utcoffset() == timedelta(hours=8)
    utc = parse(with_field("invoice.issued", "occurred_at", "2026-12-01T01:30:00Z"))
    assert utc.occurred_at == parsed.occurred_at


@pytest.mark.parametrize("name", sorted(VALID))
def test_unknown_extra_fields_are_kept_but_change_nothing(name):
    extra = {"customer_segment": "gold", "trace": {"span": "abc", "hops": [1, 2]}}
    plain = parse(VALID[name])
    enriched = parse({**VALID[name], **extra})
    assert enriched.model_extra == extra
    assert enriched.model_dump(exclude=set(extra)) == plain.model_dump()


def required_fields():
    for name, raw in sorted(VALID.items()):
        for field in raw:
            if field not in OPTIONAL.get(name, set()):
                yield pytest.param(name, field, id=f"{name}-{field}")


@pytest.mark.parametrize("name, field", list(required_fields()))
def test_missing_required_field_is_an_error(name, field):
    raw = {key: value for key, value in VALID[name].items() if key != field}
    errors = rejected(raw)
    if field in ("type", "kind"):
        # Without its discriminator the event cannot be told apart; the error says which tag was missing.
        assert field in errors[0]["msg"]
    else:
        assert {error["loc"][-1] for error in errors} == {field}
        assert errors[0]["type"] == "missing"


@pytest.mark.parametrize("name, fields", [(name, sorted(fields)) for name, fields in sorted(OPTIONAL.items())])
def test_optional_fields_may_be_left_out(name, fields):
    parse({key: value for key, value in VALID[name].items() if key not in fields})


@pytest.mark.parametrize("name, field, value", [
    ("invoice.issued", "invoice_id", 17),
    ("invoice.issued", "invoice_id", ""),
    ("invoice.issued", "event_id", None),
    ("invoice.issued", "account_id", ""),
    ("payment.received", "invoice_id", ["I1"]),
    ("payment.failed", "reason", "card_expired"),
    ("payment.failed", "reason", "Insufficient_Funds"),
    ("payment.failed", "attempt", 0),
    ("payment.failed", "attempt", "2"),
    ("payment.failed", "attempt", 2.5),
    ("arrangement.agreed/extension", "invoice_ids", "I1"),
    ("arrangement.agreed/installments", "schedule", []),
    ("arrangement.agreed/installments", "schedule", {"due_date": "2027-01-10", "amount": "60.25"}),
    ("account.updated", "risk_tier", "medium"),
    ("account.updated", "channels", "sms"),
    ("account.updated", "timezone", "Mars/Olympus"),
    ("account.updated", "timezone", "+08:00"),
    ("account.updated", "timezone", "Asia"),
    ("account.updated", "timezone", ""),
    ("platform.outage", "grace_days", -1),
    ("platform.outage", "grace_days", "two"),
    ("platform.outage", "account_id", "A1"),
    ("clock.tick", "at", None),
])
def test_wrongly_typed_field_is_an_error(name, field, value):
    assert field in rejected_field(with_field(name, field, value))


@pytest.mark.parametrize("reason", ["insufficient_funds", "invalid_payment_method", "system_error", "other"])
def test_every_failure_reason_is_accepted(reason):
    assert parse(with_field("payment.failed", "reason", reason)).reason == reason


@pytest.mark.parametrize("tier", ["low", "standard", "high"])
def test_every_risk_tier_is_accepted(tier):
    assert parse(with_field("account.updated", "risk_tier", tier)).risk_tier == tier


def test_a_payment_failure_without_attempt_is_the_first():
    raw = {key: value for key, value in VALID["payment.failed"].items() if key != "attempt"}
    assert parse(raw).attempt == 1


def test_payment_without_invoice_id_is_unallocated():
    raw = {key: value for key, value in VALID["payment.received"].items() if key != "invoice_id"}
    assert parse(raw).invoice_id is None


@pytest.mark.parametrize("kind, model", [
    ("extension", events.ExtensionAgreed),
    ("promise_to_pay", events.PromiseToPayAgreed),
    ("installments", events.InstallmentsAgreed),
    ("settlement", events.SettlementAgreed),
])
def test_arrangement_kind_selects_the_shape(kind, model):
    assert isinstance(parse(VALID[f"arrangement.agreed/{kind}"]), model)


def test_arrangement_kind_must_be_known_and_match_its_fields():
    rejected(with_field("arrangement.agreed/extension", "kind", "forgiveness"))
    # An extension's fields under the promise_to_pay kind lack promised_date and amount.
    assert rejected_field(with_field("arrangement.agreed/extension", "kind", "promise_to_pay")) >= {
        "promised_date", "amount"}


def test_installment_entries_are_strict():
    raw = copy.deepcopy(VALID["arrangement.agreed/installments"])
    raw["schedule"][0]["note"] = "first"
    assert "note" in rejected_field(raw)
    raw = copy.deepcopy(VALID["arrangement.agreed/installments"])
    raw["schedule"].reverse()
    assert "schedule" in rejected_field(raw)


def test_platform_outage_is_for_every_account():
    raw = {key: value for key, value in VALID["platform.outage"].items() if key != "account_id"}
    assert parse(raw).account_id == "*"
    backwards = with_field("platform.outage", "end", "2026-11-30T23:00:00Z")
    assert "end is before its start" in rejected(backwards)[0]["msg"]


def test_clock_tick_may_address_one_account():
    assert parse(with_field("clock.tick", "account_id", "A1")).account_id == "A1"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"42", b'"invoice.issued"', b"{}",
                                 b'{"type": "invoice.paid"}', b'{"type": null}'])
def test_garbage_is_a_validation_error(raw):
    with pytest.raises(ValidationError):
        parse_event(raw)


# --- the exported JSON Schema files say the same as the models --------------------------------------------------

@pytest.fixture(scope="module")
def validators():
    jsonschema = pytest.importorskip("jsonschema")
    from schemas.export import SCHEMA_DIR

    def load(name: str):
        schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        return jsonschema.Draft202012Validator(schema)

    return {name: load(name) for name in (*EVENT_TYPES, "input-event")}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_sample_passes_its_json_schema(validators, name):
    raw = VALID[name]
    for schema in (raw["type"], "input-event"):
        assert [error.message for error in validators[schema].iter_errors(raw)] == []


@pytest.mark.parametrize("name, field, value", [
    ("invoice.issued", "amount", 120.5),
    ("invoice.issued", "amount", "1e3"),
    ("invoice.issued", "currency", "cny"),
    ("payment.failed", "reason", "card_expired"),
    ("payment.failed", "attempt", 0),
    ("account.updated", "risk_tier", "medium"),
    ("platform.outage", "grace_days", -1),
    ("arrangement.agreed/installments", "schedule", []),
])
def test_json_schema_refuses_what_the_models_refuse(validators, name, field, value):
    raw = with_field(name, field, value)
    rejected(raw)
    for schema in (raw["type"], "input-event"):
        assert not validators[schema].is_valid(raw), schema


@pytest.mark.parametrize("name", sorted(VALID))
def test_json_schema_requires_what_the_models_require(validators, name):
    for field in VALID[name]:
        if field in OPTIONAL.get(name, set()):
            continue
        raw = {key: value for key, value in VALID[name].items() if key != field}
        assert not validators["input-event"].is_valid(raw), field


def test_json_schema_refuses_unknown_event_type(validators):
    assert not validators["input-event"].is_valid(event("invoice.paid", invoice_id="I1"))


@pytest.mark.parametrize("hours, says, json_schema_too", [
    ({"*": {"funday": {"start": "18:00", "end": "21:00"}}},
     "contact_hours.*.funday.[key]: 'funday' is not a weekday (mon, tue, wed, thu, fri, sat, sun) or a range", True),
    ({"*": {"mon": {"start": "8:00", "end": "21:00"}}},
     "contact_hours.*.mon.start: '8:00' is not a local time such as \"08:00\" (HH:MM)", True),
    ({"sms": {}}, "contact_hours.sms: Dictionary should have at least 1 item", True),
    ({"*": {"mon-fri": {"start": "18:00", "end": "21:00"}, "fri": {"start": "10:00", "end": "11:00"}}},
     "contact_hours.*: fri: fri is named twice", False),
    ({"*": {"fri-mon": {"start": "18:00", "end": "21:00"}}}, "contact_hours.*: fri-mon: 'fri-mon': the range runs "
     "backwards", False),
    ({"call": {"sat": {"start": "14:00", "end": "10:00"}}}, "contact_hours.call: sat: end 10:00 is not after start "
     "14:00", False),
])
def test_a_customers_contact_hours_are_refused_naming_the_field(validators, hours, says, json_schema_too):
    """What `dunning simulate` prints and a dead letter says; the JSON Schema refuses what a pattern can say."""
    raw = with_field("account.updated", "contact_hours", hours)
    with pytest.raises(ValidationError) as caught:
        parse(raw)
    assert [line for line in describe_errors(caught.value) if line.startswith(f"account.updated.{says}")]
    assert validators["account.updated"].is_valid(raw) is not json_schema_too
