"""What a rule's `when:` means: Rule.matches(facts) for the conditions an author can write."""
from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rules.model import ContactWindow, Rule

REMINDER = {"kind": "reminder", "channel": "sms", "template": "overdue"}


def rule(when: dict[str, Any], **fields: Any) -> Rule:
    return Rule.model_validate({"id": "r", "when": when, "emit": REMINDER, **fields})


def matching(when: dict[str, Any], fact: str, values: list[Any], **fields: Any) -> list[Any]:
    """The values of one fact, among those given, for which the rule matches."""
    compiled = rule(when, **fields)
    return [value for value in values if compiled.matches({fact: value})]


DAYS = list(range(-3, 12))


def test_bare_days_past_due_means_that_day_or_later():
    # A daily tick can be missed (outage, restart): day 3's rule must still fire on day 4.
    assert matching({"days_past_due": 3}, "days_past_due", DAYS) == [3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_bare_days_until_due_means_within_that_many_days_but_not_overdue():
    assert matching({"days_until_due": 3}, "days_until_due", DAYS) == [0, 1, 2, 3]


def test_days_until_due_zero_is_the_due_date_only():
    assert matching({"days_until_due": 0}, "days_until_due", DAYS) == [0]


@pytest.mark.parametrize("condition, expected", [
    ({"gte": 3}, [3, 4, 5, 6]),
    ({"gt": 3}, [4, 5, 6]),
    ({"lte": 3}, [0, 1, 2, 3]),
    ({"lt": 3}, [0, 1, 2]),
    ({"eq": 3}, [3]),
    ({"between": [2, 4]}, [2, 3, 4]),
    ({"between": [3, 3]}, [3]),
    ({"in": [1, 4, 6]}, [1, 4, 6]),
    ({"gte": 2, "lt": 5}, [2, 3, 4]),
])
def test_operators_on_days_past_due(condition, expected):
    assert matching({"days_past_due": condition}, "days_past_due", list(range(7))) == expected


@pytest.mark.parametrize("condition, expected", [
    ({"gte": "100.00"}, ["100", "100.00", "100.01", "5000"]),
    ({"gt": "100"}, ["100.01", "5000"]),
    ({"lt": "100.00"}, ["0", "99.99"]),
    ({"between": ["99.99", "100.01"]}, ["99.99", "100", "100.00", "100.01"]),
    ({"eq": "100"}, ["100", "100.00"]),
])
def test_operators_on_money_compare_exact_decimals(condition, expected):
    amounts = ["0", "99.99", "100", "100.00", "100.01", "5000"]
    found = matching({"overdue_amount": condition}, "overdue_amount", [Decimal(a) for a in amounts])
    assert found == [Decimal(a) for a in expected]


def test_bare_amount_is_equality():
    assert matching({"open_balance": "0.00"}, "open_balance", [Decimal("0"), Decimal("0.01")]) == [Decimal("0")]


def test_all_conditions_must_hold():
    high_risk_week_one = rule({"days_past_due": {"between": [1, 7]}, "risk_tier": "high",
                               "overdue_amount": {"gte": "50.00"}})
    facts = {"days_past_due": 3, "risk_tier": "high", "overdue_amount": Decimal("80.00")}
    assert high_risk_week_one.matches(facts)
    assert not high_risk_week_one.matches({**facts, "days_past_due": 8})
    assert not high_risk_week_one.matches({**facts, "risk_tier": "standard"})
    assert not high_risk_week_one.matches({**facts, "overdue_amount": Decimal("49.99")})


def test_a_rule_without_conditions_always_matches():
    promise_broken = rule({}, on="arrangement.broken")
    assert promise_broken.matches({})
    assert promise_broken.matches({"days_past_due": 40, "arrangement_kind": "installments"})


@pytest.mark.parametrize("when", [
    {"days_past_due": 1},
    {"days_until_due": 3},
    {"days_past_due": {"lt": 5}},
    {"overdue_amount": {"lte": "10.00"}},
    {"risk_tier": "low"},
    {"first_time": False},
])
def test_a_missing_fact_never_matches(when):
    # No open invoice means no days_past_due at all, which must not read as "day 0" or "below 5".
    assert not rule(when).matches({})
    fact = next(iter(when))
    assert not rule(when).matches({fact: None})


def test_choice_and_flag_facts():
    assert matching({"risk_tier": {"in": ["low", "standard"]}}, "risk_tier", ["low", "standard", "high"]) == [
        "low", "standard"]
    assert matching({"risk_tier": "high"}, "risk_tier", ["low", "standard", "high"]) == ["high"]
    assert matching({"first_time": True}, "first_time", [True, False]) == [True]
    assert matching({"arrangement": {"eq": "broken"}}, "arrangement", ["none", "active", "broken"]) == ["broken"]


def test_event_rule_sees_the_event_facts():
    card_invalid = rule({"failure_reason": {"in": ["invalid_payment_method", "other"]}, "amount": {"gte": "10"}},
                        on="payment.failed")
    assert card_invalid.matches({"failure_reason": "invalid_payment_method", "amount": Decimal("12.00")})
    assert not card_invalid.matches({"failure_reason": "insufficient_funds", "amount": Decimal("12.00")})
    assert not card_invalid.matches({"failure_reason": "other", "amount": Decimal("9.99")})


@pytest.mark.parametrize("when", [
    {"overdue_amount": {"gte": 100.5}},
    {"overdue_amount": 100.0},
    {"overdue_amount": {"between": ["1.00", 2.5]}},
    {"overdue_amount": {"in": ["1.00", 2.5]}},
])
def test_float_money_literals_are_refused(when):
    with pytest.raises(ValidationError, match="not floats"):
        rule(when)


@pytest.mark.parametrize("when, says", [
    ({"days_past_due": True}, "whole number of days"),
    ({"days_past_due": "3"}, "whole number of days"),
    ({"days_past_due": {"between": [7, 1]}}, "reversed"),
    ({"days_past_due": {"in": []}}, "non-empty list"),
    ({"days_past_due": {}}, "empty condition"),
    ({"risk_tier": {"lt": "high"}}, "compares numbers"),
    ({"first_time": "yes"}, "true or false"),
])
def test_conditions_that_cannot_mean_anything_are_refused(when, says):
    with pytest.raises(ValidationError, match=says):
        rule(when)


def test_every_is_a_number_of_days_or_weeks():
    assert rule({"days_past_due": 1}, every="1d").every_days == 1
    assert rule({"days_past_due": 1}, every="3d").every_days == 3
    assert rule({"days_past_due": 1}, every="2w").every_days == 14
    assert rule({"days_past_due": 1}).every_days is None
    for wrong in ("0d", "1h", "d", "1.5d", "-1d"):
        with pytest.raises(ValidationError):
            rule({"days_past_due": 1}, every=wrong)


def test_days_until_due_rules_are_judged_per_invoice():
    assert rule({"days_until_due": 3}).per_invoice
    assert not rule({"days_past_due": 3}).per_invoice
    assert not rule({}, on="invoice.issued").per_invoice


@pytest.mark.parametrize("start, end, inside, outside", [
    ("08:00", "21:00", ["08:00", "12:00", "20:59"], ["07:59", "21:00", "23:30", "00:00"]),
    ("22:00", "06:00", ["22:00", "23:59", "00:00", "05:59"], ["06:00", "12:00", "21:59"]),
])
def test_contact_window_start_inclusive_end_exclusive_and_overnight(start, end, inside, outside):
    window = ContactWindow(start=start, end=end)
    assert [t for t in inside + outside if window.contains(time.fromisoformat(t))] == inside


def test_contact_window_refuses_base_60_numbers():
    # What YAML 1.1 makes of an unquoted 21:00; a hand-built dict could still carry it.
    with pytest.raises(ValidationError, match="quoted"):
        ContactWindow(start="08:00", end=1260)


@given(threshold=st.integers(0, 400), actual=st.integers(-400, 400))
def test_bare_days_past_due_property(threshold, actual):
    assert rule({"days_past_due": threshold}).matches({"days_past_due": actual}) == (actual >= threshold)


@given(threshold=st.integers(0, 60), actual=st.integers(-60, 60))
def test_bare_days_until_due_property(threshold, actual):
    assert rule({"days_until_due": threshold}).matches({"days_until_due": actual}) == (0 <= actual <= threshold)


@given(bounds=st.lists(st.integers(-100, 100), min_size=2, max_size=2).map(sorted), actual=st.integers(-150, 150))
def test_between_property(bounds, actual):
    low, high = bounds
    compiled = rule({"days_past_due": {"between": [low, high]}})
    assert compiled.matches({"days_past_due": actual}) == (low <= actual <= high)


@given(bound=st.decimals(min_value=0, max_value=10**6, places=2),
       actual=st.decimals(min_value=0, max_value=10**6, places=2))
def test_money_gte_property(bound, actual):
    compiled = rule({"overdue_amount": {"gte": format(bound, "f")}})
    assert compiled.matches({"overdue_amount": actual}) == (actual >= bound)
