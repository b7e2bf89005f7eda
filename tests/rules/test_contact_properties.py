"""Properties over random interleavings of billing events, the notices they cause, delivery receipts for those
notices, contacts recorded by collectors and agencies and the customer's requested contact hours
(tests/rules/data/contact-properties.yaml): no window, blackout, quiet period, cap or customer's hours is ever
exceeded; a failed notice is sent again, withdrawn, suppressed or recorded
undeliverable (or still waits), never lost; a notice is sent again at most once per channel after a permanent
failure and at most retry.times more on a temporary one; redelivered receipts and records change nothing."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import Engine
from rules.loader import load_ruleset
from rules.simulator import Simulation
from schemas.events import input_event_adapter
from schemas.types import WEEKDAYS

START = datetime.fromisoformat("2026-09-20T00:00:00+08:00")
UNTIL = START + timedelta(days=40)
RULESET = load_ruleset(Path(__file__).parent / "data" / "contact-properties.yaml")
ENGINE = Engine(RULESET)
ACCOUNTS = ("A", "B")
CONTACTS = ("reminder", "urgent_notice", "offer")
OUTCOMES = ("no_answer", "left_message", "right_party", "wrong_party", "wrong_number", "refused",
            "cease_requested", "attorney_represented")
ZONE = ZoneInfo(RULESET.defaults.timezone)  # the accounts keep the ruleset's zone
FAILURES = ("bounced", "invalid_address", "unreachable", "blocked", "rejected", "other")


def event(**fields):
    return input_event_adapter.validate_python(fields)


def simulate(events, skip_idle: bool = True) -> Simulation:
    simulation = Simulation(ENGINE, skip_idle=skip_idle)
    simulation.audit = []
    simulation.run(sorted(events, key=lambda e: e.occurred_at), timedelta(hours=1), UNTIL)
    return simulation


@st.composite
def week_hours(draw) -> dict:
    """One to three days or ranges, each with hours inside the day."""
    first = draw(st.lists(st.integers(0, 6), min_size=1, max_size=3, unique=True))
    days = {}
    for day in sorted(first):
        last = draw(st.integers(day, 6)) if draw(st.booleans()) else day
        if any(other in range(day, last + 1) for other in (d for d in first if d != day)):
            last = day
        start = draw(st.integers(6 * 2, 21 * 2))  # half hours
        end = draw(st.integers(start + 1, 48))
        days[WEEKDAYS[day] if last == day else f"{WEEKDAYS[day]}-{WEEKDAYS[last]}"] = {
            "start": _clock(start * 30), "end": _clock(min(end * 30, 23 * 60 + 59))}
    return days


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def contact_hours(draw) -> dict:
    """For every channel, for calls only, both, or none ({}: the request dropped)."""
    keys = draw(st.sampled_from([("*",), ("call",), ("*", "call"), ("sms",), ()]))
    return {key: draw(week_hours()) for key in keys}


@st.composite
def interleavings(draw):
    """Billing for two accounts, collectors' records, then receipts for some of the notices that billing caused
    (and for ids no account knows), each some minutes to two days after its notice."""
    events = []
    for account in ACCOUNTS:
        due = START + timedelta(days=draw(st.integers(0, 8)))
        events.append(event(event_id=f"{account}-i", type="invoice.issued", account_id=account,
                            occurred_at=(START - timedelta(days=20)).isoformat(), invoice_id=f"{account}-1",
                            amount="900.00", currency="CNY", due_date=due.date().isoformat()))
        if draw(st.booleans()):
            events.append(event(event_id=f"{account}-u", type="account.updated", account_id=account,
                                occurred_at=(START - timedelta(days=19)).isoformat(), channels=["sms", "call"]))
        for number in range(draw(st.integers(0, 6))):
            at = START + timedelta(minutes=draw(st.integers(0, 30 * 24 * 60)))
            events.append(event(event_id=f"{account}-c{number}", type="contact.recorded", account_id=account,
                                occurred_at=at.isoformat(), channel=draw(st.sampled_from(["call", "sms", "visit"])),
                                by=draw(st.sampled_from(["agency", "collector"])),
                                outcome=draw(st.sampled_from(OUTCOMES))))
        for number in range(draw(st.integers(0, 2))):  # the customer asks for (other) contact hours
            at = START + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 20 * 24 * 60)), seconds=17)  # off ticks
            events.append(event(event_id=f"{account}-h{number}", type="account.updated", account_id=account,
                                occurred_at=at.isoformat(), contact_hours=draw(contact_hours())))
        if draw(st.booleans()):
            at = START + timedelta(days=draw(st.integers(5, 30)))
            events.append(event(event_id=f"{account}-p", type="payment.received", account_id=account,
                                occurred_at=at.isoformat(), payment_id=f"{account}-p", amount="900.00",
                                currency="CNY"))
    base = simulate(events).notices
    contacts = [n for n in base if n.kind in CONTACTS]
    chosen = draw(st.lists(st.sampled_from(contacts), unique_by=lambda n: n.notice_id, max_size=8)) if contacts else []
    for number, notice in enumerate(chosen):
        at = notice.issued_at + timedelta(minutes=draw(st.integers(1, 2 * 24 * 60)))
        common = dict(event_id=f"r{number}", account_id=notice.account_id, occurred_at=at.isoformat(),
                      notice_id=notice.notice_id, channel=notice.channel)
        if draw(st.booleans()):
            events.append(event(type="notice.failed", reason=draw(st.sampled_from(FAILURES)),
                                permanent=draw(st.booleans()), **common))
        else:
            events.append(event(type="notice.delivered", **common))
    if draw(st.booleans()):
        events.append(event(event_id="r-unknown", type="notice.failed", account_id="A",
                            occurred_at=(START + timedelta(days=3)).isoformat(), notice_id="n-nobody", channel="sms",
                            reason="bounced", permanent=True))
    return events


def _local(moment: datetime) -> datetime:
    return moment.astimezone(ZONE)


STATS: Counter = Counter()


def _asked(updates, account: str, channel: str, local: datetime) -> bool:
    """Within the hours the customer's latest request (before `local`) gives the channel, or no request."""
    given = [u for u in updates if u.account_id == account and u.occurred_at <= local]
    hours = given[-1].contact_hours if given else {}
    days = hours.get(channel) or hours.get("*")
    if days is None:
        return True
    clock = local.strftime("%H:%M")
    for written, span in days.items():
        first, _, last = written.partition("-")
        if WEEKDAYS.index(first) <= local.weekday() <= WEEKDAYS.index(last or first):
            return span.start <= clock < span.end
    return False  # a day the customer did not name


def check_contact_policy(simulation: Simulation, events) -> None:
    records = [e for e in events if e.type == "contact.recorded"]
    updates = sorted((e for e in events if e.type == "account.updated" and e.contact_hours is not None),
                     key=lambda e: e.occurred_at)
    sent_days: dict[tuple[str, str], list] = defaultdict(list)  # (account, channel) -> local days of contacts
    for notice in sorted((n for n in simulation.notices if n.kind in CONTACTS), key=lambda n: n.issued_at):
        local = _local(notice.issued_at)
        mine = [r for r in records if r.account_id == notice.account_id and r.occurred_at <= notice.issued_at]
        assert RULESET.contact_window.contains(local.time())
        assert local.date() not in RULESET.blackout
        assert _asked(updates, notice.account_id, notice.channel, local), notice
        assert not any(r.outcome in ("cease_requested", "attorney_represented") for r in mine), notice
        policy = RULESET.channels.get(notice.channel)
        if policy is not None:
            window = policy.window_on(local.date().weekday())
            assert window is not None and window.contains(local.time()), notice
            if policy.quiet_after_conversation:
                assert not any(r.outcome == "right_party" and r.occurred_at + policy.quiet_after_conversation >
                               notice.issued_at for r in mine), notice
            days = sent_days[(notice.account_id, notice.channel)] + [
                _local(r.occurred_at).date() for r in mine if r.channel == notice.channel]
            today = local.date()
            assert sum(1 for d in days if d == today) < policy.per_day, notice
            assert sum(1 for d in days if timedelta(0) <= today - d < timedelta(days=7)) < policy.per_week, notice
        sent_days[(notice.account_id, notice.channel)].append(local.date())
    for account in ACCOUNTS:  # the account-wide limits
        days = Counter(_local(n.issued_at).date() for n in simulation.notices
                       if n.kind in CONTACTS and n.account_id == account)
        assert all(count <= RULESET.limits.per_day for count in days.values())


def check_nothing_lost(simulation: Simulation) -> None:
    """Each failure answered: a notice naming it, a decision naming it, or a notice still waiting that names it."""
    lines = [record for record in simulation.audit]
    followed = Counter(n.replaces for n in simulation.notices if n.replaces)
    followed.update(line.detail["replaces"] for line in lines if line.what.startswith("decision.")
                    and "replaces" in line.detail)
    followed.update(p.replaces for state in simulation.accounts.values() for p in state.pending if p.replaces)
    failed = [line.detail["notice_id"] for line in lines if line.what == "notice.failed"
              and "ignored" not in line.detail]
    assert all(followed[notice_id] == 1 for notice_id in failed), (failed, followed)
    assert sum(followed.values()) == len(failed)


def check_sent_again_at_most_once_per_channel(simulation: Simulation) -> None:
    by_id = {n.notice_id: n for n in simulation.notices}
    permanent = {line.detail["notice_id"] for line in simulation.audit
                 if line.what == "notice.failed" and line.detail.get("permanent") == "true"}
    chains: dict[str, list] = defaultdict(list)
    for notice in simulation.sorted_notices():
        root = notice
        while root.replaces in by_id:
            root = by_id[root.replaces]
        chains[root.notice_id].append(notice)
    for chain in chains.values():
        counts = Counter(n.channel for n in chain)
        assert all(count <= 1 + RULESET.delivery.retry.times for count in counts.values()), chain
        for position, notice in enumerate(chain):
            if notice.notice_id in permanent:
                assert notice.channel not in {later.channel for later in chain[position + 1:]}, chain


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(interleavings())
def test_contact_rules_hold_over_random_interleavings(events):
    simulation = simulate(events)
    STATS.update(line.what for line in simulation.audit if line.what.startswith(("decision.", "notice.")))
    STATS.update(n.trigger.deferred_by[-1] for n in simulation.notices if n.trigger.deferred_by)
    STATS["resent"] += sum(1 for n in simulation.notices if n.replaces)
    check_contact_policy(simulation, events)
    check_nothing_lost(simulation)
    check_sent_again_at_most_once_per_channel(simulation)
    assert len({n.notice_id for n in simulation.notices}) == len(simulation.notices)
    # ticks that skip idle accounts (the wakeup: retries, windows, quiet periods) leave the same notices
    every_tick = simulate(events, skip_idle=False)
    assert [n.model_dump_json() for n in every_tick.sorted_notices()] == \
        [n.model_dump_json() for n in simulation.sorted_notices()]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(interleavings(), st.data())
def test_redelivered_receipts_and_records_change_nothing(events, data):
    """A receipt or record again under its event_id (a redelivery), or a receipt again under a new one (the service
    calling back twice), some minutes later: the same notices and the same decisions."""
    repeated = [e for e in events if e.type in ("notice.delivered", "notice.failed", "contact.recorded")]
    again = []
    for number, original in enumerate(data.draw(st.lists(st.sampled_from(repeated), max_size=6)) if repeated else []):
        later = original.occurred_at + timedelta(minutes=data.draw(st.integers(0, 600)))
        fresh = original.type != "contact.recorded" and data.draw(st.booleans())
        again.append(original.model_copy(update={"occurred_at": later,
                                                 **({"event_id": f"again-{number}"} if fresh else {})}))
    plain, redelivered = simulate(events), simulate(events + again)
    assert [n.model_dump_json() for n in redelivered.sorted_notices()] == \
        [n.model_dump_json() for n in plain.sorted_notices()]
    decisions = lambda s: [(r.account_id, r.at, r.what, r.id, r.detail) for r in s.audit  # noqa: E731
                           if r.what.startswith(("decision.", "notice.r", "notice.u", "notice.o", "notice.h"))]
    assert decisions(redelivered) == decisions(plain)


def test_the_interleavings_reach_every_case():
    """Runs after the property above (file order): its examples failed, re-sent, deferred and suppressed notices."""
    print(STATS)
    assert STATS["resent"] and STATS["notice.failed"] and STATS["decision.suppressed"]
    assert {"channel_window", "channel_limits", "blackout", "customer_hours"} <= set(STATS)


def test_after_a_cease_a_repeating_rule_is_suppressed_once_per_interval_whichever_ticks_look():
    """Found by the redelivery property: with contact ceased, a daily rule's waiting notice was suppressed at every
    evaluation, so an account woken by a moot receipt recorded more suppressions than a quiet one."""
    events = [input_event_adapter.validate_python(fields) for fields in (
        {"event_id": "A-i", "account_id": "A", "occurred_at": "2026-08-31T00:00:00+08:00", "type": "invoice.issued",
         "invoice_id": "A-1", "amount": "900.00", "currency": "CNY", "due_date": "2026-09-20"},
        {"event_id": "A-c", "account_id": "A", "occurred_at": "2026-09-20T00:00:00+08:00", "type": "contact.recorded",
         "channel": "call", "by": "agency", "outcome": "cease_requested"})]
    suppressed = [[(r.at, r.id) for r in simulate(events, skip_idle=skip).audit if r.what == "decision.suppressed"]
                  for skip in (True, False)]
    assert suppressed[0] == suppressed[1]
    daily = [at.date() for at, rule in suppressed[0] if rule == "daily-call"]
    assert len(daily) == len(set(daily)) > 5
