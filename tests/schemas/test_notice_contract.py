"""The notice contract, as a consumer (a messaging or collections system) sees it."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.notices import NOTICE_KINDS, Notice, notice_adapter

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = timezone(timedelta(hours=8))
AT = datetime(2026, 10, 11, 8, 0, tzinfo=SHANGHAI)

# Words that would mean a notice carries who the customer is, rather than ids and amounts.
PERSONAL = {"name", "first_name", "last_name", "full_name", "email", "phone", "mobile", "address", "street",
            "postcode", "birth_date", "national_id", "iban", "card_number"}


def notice(**overrides: Any) -> Notice:
    fields: dict[str, Any] = dict(
        notice_id="n-1", kind="reminder", account_id="A1", rule_id="overdue-day-1", ruleset_version="2026.11",
        channel="sms", template="overdue", days_past_due=1, overdue={"CNY": Decimal("6000.10")},
        invoices=[{"invoice_id": "I1", "currency": "CNY", "amount_due": Decimal("6000.10"),
                   "due_date": date(2026, 10, 10)}],
        episode_id="A1/1", issued_at=AT, caused_by="tick:1", trigger={"event_id": "tick:1", "at": AT},
        facts={"days_past_due": 1, "overdue_amount": "6000.10", "first_time": False, "risk_tier": "standard"},
    )
    fields.update(overrides)
    return Notice.model_validate(fields)


def floats_in(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [found for item in value.values() for found in floats_in(item)]
    if isinstance(value, list):
        return [found for item in value for found in floats_in(item)]
    return []


def test_amounts_are_serialised_as_decimal_strings():
    wire = json.loads(notice().to_json())
    assert wire["overdue"] == {"CNY": "6000.10"}
    assert wire["invoices"][0]["amount_due"] == "6000.10"
    assert floats_in(wire) == []


def test_amounts_keep_their_exact_value_through_json():
    # 0.1 + 0.2 is the classic float casualty; as a Decimal string it survives the round trip.
    sent = notice(overdue={"CNY": Decimal("0.1") + Decimal("0.2")})
    received = notice_adapter.validate_json(sent.to_json())
    assert received.overdue["CNY"] == Decimal("0.3")


@pytest.mark.parametrize("episode_id", ["A1/1", None])
def test_a_published_notice_reads_back_as_the_same_notice(episode_id):
    # to_json leaves out empty fields; the consumer must still be able to validate what it receives.
    sent = notice(episode_id=episode_id)
    assert notice_adapter.validate_json(sent.to_json()) == sent


def test_handoff_notice_round_trips():
    sent = notice(kind="handoff", channel=None, template=None, to="collector", action="open",
                  case_file={"events": [{"at": AT, "what": "invoice.issued", "id": "e1",
                                         "detail": {"invoice_id": "I1", "amount": "6000.10"}}], "notices": []})
    wire = json.loads(sent.to_json())
    assert "channel" not in wire and wire["to"] == "collector"
    assert notice_adapter.validate_json(sent.to_json()) == sent


@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_notice_kinds(kind):
    assert notice(kind=kind).kind == kind


def test_notice_kind_is_a_known_one():
    assert set(NOTICE_KINDS) == {"reminder", "urgent_notice", "handoff", "offer", "settlement", "write_off",
                                 "recovery", "restriction"}
    with pytest.raises(ValidationError):
        notice(kind="sms")


def test_notice_amount_cannot_be_a_float():
    with pytest.raises(ValidationError):
        notice(overdue={"CNY": 6000.1})


@pytest.mark.parametrize("field", ["email", "phone", "customer_name", "address"])
def test_a_notice_cannot_carry_personal_data(field):
    with pytest.raises(ValidationError) as caught:
        notice(**{field: "someone"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def property_names(schema: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(schema, dict):
        names |= set(schema.get("properties", {}))
        for value in schema.values():
            names |= property_names(value)
    elif isinstance(schema, list):
        for value in schema:
            names |= property_names(value)
    return names


def test_the_notice_schema_has_no_personal_fields():
    names = property_names(Notice.model_json_schema())
    assert {"notice_id", "account_id", "overdue", "invoices"} <= names
    assert names & PERSONAL == set()


def test_personal_data_on_events_does_not_reach_notices():
    # Events keep unknown extra fields; a notice (and its case file) must not pass them on.
    from rules.engine import Engine
    from rules.loader import load_ruleset
    from rules.simulator import Simulation
    from schemas.events import parse_event

    secrets = {"customer_name": "Zhang Wei", "phone": "+86 138 0000 0000", "email": "zw@example.com"}
    envelope = {"account_id": "A1", **secrets}
    raw = [
        {"event_id": "e1", "type": "account.updated", "occurred_at": "2026-10-01T10:00:00+08:00",
         "channels": ["sms"], **envelope},
        {"event_id": "e2", "type": "invoice.issued", "occurred_at": "2026-10-01T10:00:00+08:00",
         "invoice_id": "I1", "amount": "6000.00", "currency": "CNY", "due_date": "2026-10-10", **envelope},
        {"event_id": "e3", "type": "payment.failed", "occurred_at": "2026-10-12T10:00:00+08:00",
         "payment_id": "P1", "amount": "6000.00", "currency": "CNY", "reason": "invalid_payment_method",
         **envelope},
    ]
    simulation = Simulation(Engine(load_ruleset(REPO / "rules" / "default.yaml")))
    simulation.run([parse_event(json.dumps(item)) for item in raw], timedelta(hours=1),
                   datetime(2026, 10, 20, tzinfo=SHANGHAI))
    notices = simulation.sorted_notices()
    kinds = {n.kind for n in notices}
    assert {"reminder", "urgent_notice", "handoff"} <= kinds  # the check below is only worth something if all ran
    for sent in notices:
        text = sent.to_json().decode()
        for secret in secrets.values():
            assert secret not in text, (sent.rule_id, secret)


def test_published_notice_passes_the_exported_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from schemas.export import SCHEMA_DIR

    schema = json.loads((SCHEMA_DIR / "notice.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for sent in (notice(), notice(episode_id=None)):
        assert [error.message for error in validator.iter_errors(json.loads(sent.to_json()))] == []
    wire = json.loads(notice().to_json())
    wire["overdue"]["CNY"] = 6000.1
    assert not validator.is_valid(wire)


def test_a_decision_no_rule_made_reads_back_without_a_rule_id():
    sent = notice(kind="write_off", channel=None, template=None, rule_id=None, written_off={"CNY": "1200.00"},
                  reason="bankruptcy")
    wire = json.loads(sent.to_json())
    assert "rule_id" not in wire and wire["written_off"] == {"CNY": "1200.00"}
    assert notice_adapter.validate_json(sent.to_json()) == sent
