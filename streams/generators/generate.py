"""Deterministic synthetic billing event streams, for tests, demos and benchmarks. Data only: no Kafka.

`generate(accounts, days, start, seed)` tells a small story for each account over `days` days from `start`:
an onboarding account.updated for most (risk tier, time zone, channel preferences, opt-outs), monthly and
ad-hoc invoices (mostly CNY, some USD, due 7-30 days after issue), and for each invoice one behaviour:

    on time, late, partial, never (some written off by billing, some settled for less), overpaid, prepaid
    (payment before the invoice), a promise to pay, an installment plan or an extension (each kept, broken or
    cancelled), a dispute (resolved by a credit note, a cancellation or upheld), a credit note, or a
    cancellation;

with auto-debits that fail for each of the four reasons, and a platform.outage or two (account_id "*").

The result is a list of JSON-ready dicts in occurred_at order, each valid per schemas/events.py. Every account
draws from its own `random.Random` seeded by (seed, account index), so the stream is byte-for-byte
reproducible and account k's story does not depend on how many accounts there are. Event ids are
`ev-<account>-<n>` (n in the account's time order) and `ev-outage-<n>`.

Local times (billing runs, business hours, "today") use the account's time zone; accounts that never send
one are in Asia/Shanghai, the default ruleset's zone.

    python -m streams.generators.generate --accounts 300 --days 30 --start 2026-11-01T00:00:00+08:00 --seed 7 > events.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"
ZONES = (("Asia/Shanghai", 60), ("Asia/Kolkata", 14), ("America/New_York", 13), ("Europe/Berlin", 13))
RISK_TIERS = (("low", 25), ("standard", 55), ("high", 20))
CHANNELS = ("app_push", "sms", "email", "wechat")
OPT_OUTS = (
    (None, 88), (["sms"], 6), (["email"], 2), (["sms", "email"], 2), (["sms", "email", "app_push", "letter"], 2),
)
FAILURE_REASONS = (("insufficient_funds", 50), ("invalid_payment_method", 20), ("system_error", 18), ("other", 12))
WRITE_OFF_REASONS = (("uncollectible", 40), ("bankruptcy", 25), ("deceased", 10), ("fraud", 10), ("other", 15))
BEHAVIOURS = (
    "on_time", "late", "partial", "never", "overpaid", "prepaid",
    "promise", "installments", "extension", "dispute", "adjusted", "cancelled",
)
# Weights per risk tier, in BEHAVIOURS order (percent).
BEHAVIOUR_WEIGHTS = {
    "low": (56, 12, 5, 3, 5, 4, 3, 3, 3, 3, 2, 1),
    "standard": (42, 15, 7, 8, 4, 3, 6, 5, 4, 3, 2, 1),
    "high": (22, 20, 9, 18, 2, 1, 9, 8, 4, 3, 2, 2),
}
BILLING_PERIOD_DAYS = 30
# Ad-hoc invoices (purchases on credit) per account per 30 days, and how often each count occurs.
ADHOC_INVOICES = (0, 1, 2, 3, 4)
ADHOC_WEIGHTS = (40, 28, 17, 10, 5)
# Payment terms in days after issue.
TERMS = ((7, 20), (10, 10), (14, 30), (15, 10), (21, 10), (30, 20))
USD_ACCOUNT_SHARE = 0.12


def _cents(cents: int) -> str:
    """Whole cents as a decimal string: 12050 -> "120.50"."""
    return f"{cents // 100}.{cents % 100:02d}"


def _pick(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([item for item, _ in weighted], weights=[weight for _, weight in weighted])[0]


class _Account:
    """One account's story: collects (instant, order, event) with the envelope filled in later."""

    def __init__(self, index: int, seed: int, start: datetime, end: datetime):
        self.rng = random.Random(f"dunning-stream/{seed}/{index}")
        self.index = index
        self.account_id = f"acct-{index:06d}"
        self.start, self.end = start, end
        self.events: list[tuple[datetime, int, dict[str, Any]]] = []
        self.counters: dict[str, int] = {}
        rng = self.rng
        self.zone_name = _pick(rng, ZONES)
        self.zone = ZoneInfo(self.zone_name)
        self.risk = _pick(rng, RISK_TIERS)
        self.usd = rng.random() < USD_ACCOUNT_SHARE
        self.autodebit = rng.random() < 0.4

    # ------------------------------------------------------------------ helpers

    def next_id(self, prefix: str) -> str:
        n = self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return f"{prefix}-{self.index:06d}-{n}"

    def emit(self, at: datetime, event_type: str, **fields: Any) -> bool:
        """Keeps the event if it falls inside the window; False when it does not."""
        if not (self.start <= at < self.end):
            return False
        event = {"event_id": None, "type": event_type, "account_id": self.account_id, "occurred_at": at}
        event.update(fields)
        self.events.append((at, len(self.events), event))
        return True

    def local_day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def at_local(self, day: date, from_hour: float = 0, to_hour: float = 24) -> datetime:
        """A random instant on a local day between two local hours."""
        midnight = datetime.combine(day, time(0), tzinfo=self.zone)
        seconds = self.rng.randrange(int(from_hour * 3600), int(to_hour * 3600))
        return (midnight + timedelta(seconds=seconds)).astimezone(timezone.utc)

    def end_of(self, day: date) -> datetime:
        """The first instant after a local day."""
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(timezone.utc)

    def pay(self, at: datetime, cents: int, currency: str, invoice_id: str | None) -> bool:
        fields: dict[str, Any] = {"payment_id": self.next_id("pay"), "amount": _cents(cents), "currency": currency}
        if invoice_id is not None:
            fields["invoice_id"] = invoice_id
        return self.emit(at, "payment.received", **fields)

    def fail(self, at: datetime, cents: int, currency: str, invoice_id: str, reason: str | None = None) -> None:
        self.emit(at, "payment.failed", payment_id=self.next_id("pay"), amount=_cents(cents), currency=currency,
                  invoice_id=invoice_id, reason=reason or _pick(self.rng, FAILURE_REASONS))

    # ------------------------------------------------------------------ the story

    def tell(self, days: int) -> None:
        rng = self.rng
        issues: list[tuple[datetime, bool]] = []
        span = min(days, BILLING_PERIOD_DAYS)
        anchor = rng.uniform(0, span)
        offset = anchor
        while offset < days:
            issues.append((self.start + timedelta(days=offset), True))
            offset += BILLING_PERIOD_DAYS
        purchases = round(rng.choices(ADHOC_INVOICES, weights=ADHOC_WEIGHTS)[0] * days / BILLING_PERIOD_DAYS)
        for _ in range(purchases):
            issues.append((self.start + timedelta(days=rng.uniform(0, days)), False))
        issues.sort()
        first = issues[0][0] if issues else self.end
        self.onboard(first)
        for when, batch in issues:
            day = self.local_day(when)
            issued_at = self.at_local(day, 1, 5) if batch else self.at_local(day, 9, 21)
            currency = "USD" if self.usd and rng.random() < 0.8 else "CNY"
            self.invoice(issued_at, currency, self.amount(currency))
        if rng.random() < 0.05 and days > 2:
            # The risk team re-scores the account mid-way (usually after missed payments).
            at = self.start + timedelta(days=rng.uniform(days / 3, days))
            self.emit(at, "account.updated", risk_tier="high" if rng.random() < 0.7 else "standard")

    def onboard(self, first_invoice: datetime) -> None:
        rng = self.rng
        needs_zone = self.zone_name != DEFAULT_ZONE
        if not needs_zone and rng.random() < 0.45:
            return
        fields: dict[str, Any] = {}
        if self.risk != "standard" or rng.random() < 0.5:
            fields["risk_tier"] = self.risk
        if needs_zone or rng.random() < 0.5:
            fields["timezone"] = self.zone_name
        if rng.random() < 0.6:
            fields["channels"] = rng.sample(CHANNELS, rng.randint(1, 3))
        opted_out = _pick(rng, OPT_OUTS)
        if opted_out is not None:
            fields["opted_out_channels"] = list(opted_out)
        if not fields:
            fields["risk_tier"] = self.risk
        at = first_invoice - timedelta(seconds=rng.randrange(600, 2 * 86400))
        if at < self.start:
            at = self.start + timedelta(seconds=rng.randrange(1, 600))
        self.emit(at, "account.updated", **fields)

    def amount(self, currency: str) -> int:
        rng = self.rng
        band = rng.random()
        if currency == "USD":
            low, high = (5, 150) if band < 0.6 else (150, 900) if band < 0.92 else (900, 4000)
        else:
            low, high = (20, 300) if band < 0.5 else (300, 3000) if band < 0.85 else (3000, 20000)
        return rng.randrange(low * 100, high * 100)

    def invoice(self, issued_at: datetime, currency: str, cents: int) -> None:
        rng = self.rng
        invoice_id = self.next_id("inv")
        issue_day = self.local_day(issued_at)
        due = issue_day + timedelta(days=_pick(rng, TERMS))
        due_end = self.end_of(due)
        behaviour = rng.choices(BEHAVIOURS, weights=BEHAVIOUR_WEIGHTS[self.risk])[0]
        if behaviour == "prepaid":
            # Money arrives before the bill (a top-up, or paying from a statement preview): it becomes credit.
            before = issued_at - timedelta(seconds=rng.randrange(3600, 5 * 86400))
            extra = rng.choice((0, 0, 0, rng.randrange(100, max(101, cents // 5))))
            self.pay(max(before, self.start), cents + extra, currency, None)
        if not self.emit(issued_at, "invoice.issued", invoice_id=invoice_id, amount=_cents(cents),
                         currency=currency, due_date=due.isoformat()):
            return
        getattr(self, f"_{behaviour}")(invoice_id, currency, cents, issued_at, due, due_end)

    def debit_day(self, day: date) -> datetime:
        return self.at_local(day, 6, 10)

    def before(self, issued_at: datetime, deadline_end: datetime) -> datetime:
        """A payment time between issue and a deadline, leaning towards the deadline."""
        low = (issued_at + timedelta(hours=1)).timestamp()
        high = (deadline_end - timedelta(minutes=30)).timestamp()
        if high <= low:
            return issued_at + timedelta(hours=1)
        moment = self.rng.triangular(low, high, high)
        return datetime.fromtimestamp(int(moment), tz=timezone.utc)

    def days_after(self, day: date, low: int, high: int, from_hour: float = 8, to_hour: float = 22) -> datetime:
        return self.at_local(day + timedelta(days=self.rng.randint(low, high)), from_hour, to_hour)

    # ------------------------------------------------------------------ behaviours

    def _on_time(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        if self.autodebit:
            at = self.debit_day(due - timedelta(days=self.rng.randint(0, 2)))
            if self.rng.random() < 0.2:
                self.fail(at, cents, cur, inv)
                at += timedelta(hours=self.rng.randint(2, 10))
                at = min(at, due_end - timedelta(minutes=5))
            self.pay(max(at, issued_at + timedelta(minutes=5)), cents, cur, inv)
        else:
            self.pay(self.before(issued_at, due_end), cents, cur, inv if self.rng.random() < 0.85 else None)

    def _late(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        if self.rng.random() < (0.7 if self.autodebit else 0.15):
            self.fail(self.debit_day(due), cents, cur, inv)
        late = self.rng.choice((1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25))
        self.pay(self.at_local(due + timedelta(days=late), 7, 23), cents, cur, inv if self.rng.random() < 0.8 else None)

    def _partial(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        part = cents * self.rng.randint(20, 80) // 100
        at = self.before(issued_at, due_end) if self.rng.random() < 0.6 else self.days_after(due, 1, 5)
        self.pay(at, part, cur, inv)
        if self.rng.random() < 0.5:  # the rest follows, late
            self.pay(at + timedelta(days=self.rng.randint(3, 20)), cents - part, cur, inv)

    def _never(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        if self.autodebit or self.rng.random() < 0.3:
            reason = _pick(self.rng, FAILURE_REASONS)
            self.fail(self.debit_day(due), cents, cur, inv, reason)
            if reason != "invalid_payment_method" and self.rng.random() < 0.6:
                self.fail(self.debit_day(due + timedelta(days=3)), cents, cur, inv, "insufficient_funds")
        self._given_up_or_settled(inv, cur, cents, due)

    def _given_up_or_settled(self, inv: str, cur: str, cents: int, due: date) -> None:
        """Some unpaid invoices billing writes off (small ones as small_balance; a few are paid later after all,
        a recovery), some a collector settles for less: paid by its date, or not."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            reason = "small_balance" if cents < 5000 else _pick(rng, WRITE_OFF_REASONS)
            written_off_at = self.days_after(due, 3, 20, 9, 18)
            if self.emit(written_off_at, "debt.written_off", invoice_ids=[inv], reason=reason) and rng.random() < 0.3:
                self.pay(written_off_at + timedelta(days=rng.randint(5, 30)), cents, cur, inv)  # recovered after all
        elif roll < 0.45:
            agreed_at = self.days_after(due, 2, 10, 9, 19)
            by_date = self.local_day(agreed_at) + timedelta(days=rng.randint(5, 10))
            amount = max(1, cents * rng.randint(50, 80) // 100)
            fields: dict[str, Any] = {"arrangement_id": self.next_id("arr"), "kind": "settlement",
                                      "amount": _cents(amount), "by_date": by_date.isoformat(), "invoice_ids": [inv]}
            if cur != "CNY":  # the ruleset's currency otherwise
                fields["currency"] = cur
            if self.emit(agreed_at, "arrangement.agreed", **fields) and rng.random() < 0.7:
                paid_at = self.at_local(by_date - timedelta(days=rng.randint(0, 3)), 8, 22)
                self.pay(max(paid_at, agreed_at + timedelta(hours=1)), amount, cur, inv)

    def _overpaid(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        extra = max(1, cents * self.rng.randint(1, 50) // 100)
        self.pay(self.before(issued_at, due_end), cents + extra, cur, inv if self.rng.random() < 0.5 else None)

    def _prepaid(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        pass  # the payment went out before the invoice (see invoice())

    def _promise(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        rng = self.rng
        agreed_at = self.days_after(due, 1, 6, 9, 19)  # a collector call once it is overdue
        agreed_day = self.local_day(agreed_at)
        promised = agreed_day + timedelta(days=rng.randint(2, 7))
        arrangement = self.next_id("arr")
        fields: dict[str, Any] = {"arrangement_id": arrangement, "kind": "promise_to_pay",
                                  "promised_date": promised.isoformat(), "amount": _cents(cents)}
        if rng.random() < 0.5 or cur != "CNY":  # CNY is the ruleset's default: half the time it is left out
            fields["currency"] = cur
        if not self.emit(agreed_at, "arrangement.agreed", **fields):
            return
        outcome = rng.random()
        if outcome < 0.6:  # kept
            paid_at = self.at_local(promised - timedelta(days=rng.randint(0, 2)), 8, 22)
            self.pay(max(paid_at, agreed_at + timedelta(hours=1)), cents, cur, inv)
        elif outcome < 0.72:  # called off, paid later anyway
            self.emit(agreed_at + timedelta(days=1, hours=rng.randint(0, 8)), "arrangement.cancelled",
                      arrangement_id=arrangement)
            self.pay(self.days_after(promised, 2, 10), cents, cur, inv)
        elif outcome < 0.85:  # broken with a token payment
            self.pay(self.at_local(promised, 8, 20), max(1, cents // rng.randint(3, 6)), cur, inv)
        # else broken outright

    def _installments(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        rng = self.rng
        agreed_at = self.days_after(due, -2, 4, 9, 19)
        agreed_at = max(agreed_at, issued_at + timedelta(hours=2))
        first = self.local_day(agreed_at) + timedelta(days=rng.randint(3, 7))
        parts = rng.randint(2, 4)
        gap = rng.choice((7, 7, 14))
        share = cents // parts
        amounts = [share] * (parts - 1) + [cents - share * (parts - 1)]
        if share <= 0:
            amounts = [cents]
        schedule = [{"due_date": (first + timedelta(days=gap * k)).isoformat(), "amount": _cents(a)}
                    for k, a in enumerate(amounts)]
        arrangement = self.next_id("arr")
        fields: dict[str, Any] = {"arrangement_id": arrangement, "kind": "installments", "schedule": schedule}
        if rng.random() < 0.8:
            fields["invoice_ids"] = [inv]
        if cur != "CNY":
            fields["currency"] = cur
        if not self.emit(agreed_at, "arrangement.agreed", **fields):
            return
        outcome = rng.random()
        if outcome < 0.15:
            self.emit(agreed_at + timedelta(days=rng.randint(1, 3)), "arrangement.cancelled",
                      arrangement_id=arrangement)
            return
        kept_parts = len(amounts) if outcome < 0.7 else rng.randint(0, len(amounts) - 1)
        for k in range(kept_parts):
            day = first + timedelta(days=gap * k - rng.randint(0, 2))
            self.pay(self.at_local(day, 8, 22), amounts[k], cur, inv if rng.random() < 0.7 else None)

    def _extension(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        rng = self.rng
        agreed_at = self.days_after(due, -3, 2, 9, 19)
        agreed_at = max(agreed_at, issued_at + timedelta(hours=2))
        new_due = due + timedelta(days=rng.randint(7, 21))
        arrangement = self.next_id("arr")
        fields: dict[str, Any] = {"arrangement_id": arrangement, "kind": "extension",
                                  "new_due_date": new_due.isoformat()}
        if rng.random() < 0.7:
            fields["invoice_ids"] = [inv]
        if not self.emit(agreed_at, "arrangement.agreed", **fields):
            return
        outcome = rng.random()
        if outcome < 0.6:
            self.pay(self.at_local(new_due - timedelta(days=rng.randint(0, 4)), 8, 22), cents, cur, inv)
        elif outcome < 0.72:
            self.emit(agreed_at + timedelta(days=rng.randint(1, 4)), "arrangement.cancelled",
                      arrangement_id=arrangement)
        elif outcome < 0.85:
            self.pay(self.days_after(new_due, 3, 12), cents, cur, inv)  # broken, paid late

    def _dispute(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        rng = self.rng
        opened = self.days_after(self.local_day(issued_at), 1, 10, 9, 20)
        if not self.emit(opened, "dispute.opened", invoice_id=inv):
            return
        resolved = opened + timedelta(days=rng.randint(3, 15), hours=rng.randint(0, 8))
        if not self.emit(resolved, "dispute.resolved", invoice_id=inv):
            return
        outcome = rng.random()
        if outcome < 0.4:  # customer was right in part: credit note, then pays the rest
            lower = cents * rng.randint(40, 90) // 100
            self.emit(resolved + timedelta(minutes=rng.randint(5, 120)), "invoice.adjusted", invoice_id=inv,
                      amount=_cents(lower))
            self.pay(resolved + timedelta(days=rng.randint(0, 6), hours=rng.randint(3, 20)), lower, cur, inv)
        elif outcome < 0.65:  # customer was right: the invoice goes away
            self.emit(resolved + timedelta(minutes=rng.randint(5, 120)), "invoice.cancelled", invoice_id=inv)
        elif outcome < 0.9:  # upheld: pays
            self.pay(resolved + timedelta(days=rng.randint(0, 10), hours=rng.randint(3, 20)), cents, cur, inv)
        # else upheld and still unpaid

    def _adjusted(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        rng = self.rng
        at = issued_at + timedelta(days=rng.randint(1, 5), hours=rng.randint(1, 12))
        new = cents * rng.randint(50, 95) // 100 if rng.random() < 0.85 else cents + cents * rng.randint(5, 20) // 100
        self.emit(at, "invoice.adjusted", invoice_id=inv, amount=_cents(new))
        if rng.random() < 0.7:
            self.pay(max(self.before(issued_at, due_end), at + timedelta(hours=1)), new, cur, inv)
        else:
            self._late(inv, cur, new, issued_at, due, due_end)

    def _cancelled(self, inv: str, cur: str, cents: int, issued_at: datetime, due: date, due_end: datetime) -> None:
        rng = self.rng
        at = issued_at + timedelta(days=rng.randint(1, 12), hours=rng.randint(1, 12))
        if rng.random() < 0.3:  # paid part before it was withdrawn: the refund becomes credit
            self.pay(issued_at + timedelta(hours=rng.randint(2, 20)), max(1, cents // 2), cur, inv)
        self.emit(at, "invoice.cancelled", invoice_id=inv)


def _outages(days: int, start: datetime, end: datetime, seed: int) -> list[tuple[datetime, dict[str, Any]]]:
    if days < 2:
        return []
    rng = random.Random(f"dunning-stream/{seed}/platform")
    count = 1 if days < 20 else 2
    result = []
    for n in range(1, count + 1):
        began = (start + timedelta(days=rng.uniform(1, days - 1))).replace(second=0, microsecond=0)
        ended = began + timedelta(minutes=rng.randint(45, 9 * 60))
        reported = ended + timedelta(minutes=rng.randint(5, 90))
        if reported >= end:
            continue
        result.append((reported, {
            "event_id": f"ev-outage-{n}", "type": "platform.outage", "account_id": "*", "occurred_at": reported,
            "outage_id": f"outage-{seed}-{n}", "start": began, "end": ended, "grace_days": rng.randint(1, 3),
        }))
    return result


def _stamp(value: datetime, zone: Any) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds")


def generate(accounts: int, days: int, start: datetime, seed: int) -> list[dict[str, Any]]:
    """Events for `accounts` accounts over `days` days from `start` (aware), in occurred_at order."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be an aware datetime, e.g. 2026-11-01T00:00:00+08:00")
    if accounts < 0 or days < 1:
        raise ValueError("accounts must be >= 0 and days >= 1")
    end = start + timedelta(days=days)
    zone = start.tzinfo
    keyed: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for index in range(accounts):
        account = _Account(index, seed, start, end)
        account.tell(days)
        account.events.sort(key=lambda item: (item[0], item[1]))
        for n, (at, _, event) in enumerate(account.events, start=1):
            event["event_id"] = f"ev-{account.account_id}-{n}"
            keyed.append((at, index + 1, n, event))
    keyed.extend((at, 0, n, event) for n, (at, event) in enumerate(_outages(days, start, end, seed)))
    keyed.sort(key=lambda item: item[:3])
    ordered: list[dict[str, Any]] = []
    for _, _, _, event in keyed:
        event["occurred_at"] = _stamp(event["occurred_at"], zone)
        if event["type"] == "platform.outage":
            event["start"] = _stamp(event["start"], zone)
            event["end"] = _stamp(event["end"], zone)
        ordered.append(event)
    return ordered


def to_jsonl_bytes(events: Iterable[dict[str, Any]]) -> list[bytes]:
    """One compact JSON line per event, each ending in a newline: b"".join(...) is a JSONL file."""
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return [(dumps(event) + "\n").encode() for event in events]


def main(argv: list[str] | None = None) -> int:
    from streams.tools.args import aware_time

    parser = argparse.ArgumentParser(prog="python -m streams.generators.generate",
                                     description="Write a deterministic synthetic billing event stream as JSONL.")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=aware_time, default=aware_time("2026-11-01T00:00:00+08:00"),
                        help="aware RFC 3339 start time (default 2026-11-01T00:00:00+08:00)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", "-o", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        events = generate(args.accounts, args.days, args.start, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    data = b"".join(to_jsonl_bytes(events))
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
