"""Every event fact rules.model.EVENT_FACTS declares reaches the event rules of its type, with the event's value,
and no other event fact does: a rule `rules check` accepts is judged on what it names (issue 16: a write-off's
`reason` and an agreed settlement's `arrangement_kind` were accepted and never matched).

Each type has a hand-written example below that puts a fact's value where the event carries it; a fact declared
without one fails here, so the declaration and the engine cannot drift apart again."""
from __future__ import annotations

import inspect
import pytest

from rules.engine.behaviour import FACTS as BEHAVIOUR_FACTS
from rules.model import ACCOUNT_FACTS, CONTACT_FACTS, EVENT_FACTS, FactSpec

RULES = """\
version: "facts"
defaults: {timezone: Asia/Shanghai, currency: CNY}
rules:
  - id: probe
    on: %s
    when: {%s: %s}
    emit: {kind: handoff, to: collector}
"""


def owing(h):
    """An account with an invoice of 300.00 due 1 October."""
    h.invoice("2026-09-20 10:00", "I1", "300.00", "2026-10-01")


def payment_failed(h, failure_reason="insufficient_funds", amount="100.00", currency="CNY"):
    owing(h)
    h.event("payment.failed", "2026-10-05 10:00", payment_id="D1", amount=amount, currency=currency,
            reason=failure_reason)


def payment_received(h, amount="100.00", currency="CNY"):
    owing(h)
    h.pay("2026-10-05 10:00", "P1", amount, currency)


def invoice_issued(h, amount="100.00", currency="CNY"):
    h.invoice("2026-10-05 10:00", "I9", amount, "2026-10-30", currency)


def invoice_adjusted(h, amount="100.00"):
    owing(h)
    h.event("invoice.adjusted", "2026-10-05 10:00", invoice_id="I1", amount=amount)


AGREED = {"extension": {"new_due_date": "2026-10-20"}, "promise_to_pay": {"promised_date": "2026-10-20",
                                                                        "amount": "300.00"},
          "installments": {"schedule": [{"due_date": "2026-10-20", "amount": "300.00"}]},
          "settlement": {"amount": "200.00", "by_date": "2026-10-20"}}


def arrangement_agreed(h, arrangement_kind="promise_to_pay"):
    owing(h)
    h.event("arrangement.agreed", "2026-10-05 10:00", arrangement_id="A1", kind=arrangement_kind,
            **AGREED[arrangement_kind])


def arrangement_broken(h, arrangement_kind="promise_to_pay"):
    """Each kind agreed on 5 October for the 10th, and nothing paid: broken at midnight on the 11th."""
    owing(h)
    terms = {"extension": {"new_due_date": "2026-10-10"},
             "promise_to_pay": {"promised_date": "2026-10-10", "amount": "300.00"},
             "installments": {"schedule": [{"due_date": "2026-10-10", "amount": "300.00"}]},
             "settlement": {"amount": "200.00", "by_date": "2026-10-10"}}[arrangement_kind]
    h.event("arrangement.agreed", "2026-10-05 10:00", arrangement_id="A1", kind=arrangement_kind, **terms)
    h.run_until("2026-10-05 11:00", "2026-10-11 01:00")


def debt_written_off(h, reason="uncollectible"):
    owing(h)
    h.event("debt.written_off", "2026-10-05 10:00", reason=reason)


def account_flagged(h, flag="vulnerable"):
    owing(h)
    h.event("account.flagged", "2026-10-05 10:00", flag=flag)


def account_unflagged(h, flag="vulnerable"):
    account_flagged(h, flag)
    h.event("account.unflagged", "2026-10-06 10:00", flag=flag)


def contact_recorded(h, outcome="no_answer", by="agency"):
    owing(h)
    h.event("contact.recorded", "2026-10-05 10:00", channel="call", by=by, outcome=outcome)


EXAMPLES = {"payment.failed": payment_failed, "payment.received": payment_received,
            "invoice.issued": invoice_issued, "invoice.adjusted": invoice_adjusted,
            "arrangement.agreed": arrangement_agreed, "arrangement.broken": arrangement_broken,
            "debt.written_off": debt_written_off, "account.flagged": account_flagged,
            "account.unflagged": account_unflagged, "contact.recorded": contact_recorded}


def values(spec: FactSpec) -> list[str]:
    """The values to try a fact with, as a rule writes them (system_error never notifies: README)."""
    if spec.kind == "choice":
        return [choice for choice in spec.choices if choice != "system_error"]
    return {"money": ['"123.45"', '"100.00"'], "text": ["USD", "CNY"]}[spec.kind]


DECLARED = [(event_type, fact) for event_type, facts in EVENT_FACTS.items() for fact in facts]


def test_every_type_with_event_facts_has_an_example():
    assert set(EVENT_FACTS) == set(EXAMPLES)
    for event_type, example in EXAMPLES.items():  # an example sets exactly the declared facts
        assert set(inspect.signature(example).parameters) - {"h"} == set(EVENT_FACTS[event_type]), event_type


@pytest.mark.parametrize("event_type, fact", DECLARED, ids=[f"{t}:{f}" for t, f in DECLARED])
def test_a_declared_event_fact_matches_the_events_value_and_only_it(make_harness, event_type, fact):
    spec = EVENT_FACTS[event_type][fact]
    tried = values(spec)
    for wanted in tried:
        for carried in tried:
            h = make_harness(RULES % (event_type, fact, wanted))
            EXAMPLES[event_type](h, **{fact: carried.strip('"')})
            # the rule decided: a notice, or its suppression (do_not_dun sends nothing a rule decides)
            fired = [n for n in h.notices if n.rule_id == "probe"] + [
                line for line in h.audit if line.what == "decision.suppressed" and line.id == "probe"]
            assert len(fired) == (wanted == carried), (event_type, fact, wanted, carried)


@pytest.mark.parametrize("event_type", EXAMPLES)
def test_an_event_rule_sees_the_account_facts_and_its_events_declared_facts_only(make_harness, event_type):
    h = make_harness(RULES % (event_type, "risk_tier", "standard"))
    EXAMPLES[event_type](h)
    [notice] = [n for n in h.notices if n.rule_id == "probe"]
    # flags shows only while one stands, behaviour and contact facts only to a ruleset that reads them (this one
    # does not)
    account = (set(ACCOUNT_FACTS) - {"days_until_due", *BEHAVIOUR_FACTS, *CONTACT_FACTS}
               - (set() if h.state.flags else {"flags"}))
    assert set(notice.facts) == account | set(EVENT_FACTS[event_type])
    if "amount" in EVENT_FACTS[event_type]:
        assert notice.facts["amount"] == "100.00"  # the event's, not the account's
