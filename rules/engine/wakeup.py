"""When a tick could next change an account: ticks before that may skip it."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rules.engine.contact import ContactPolicy
from rules.engine.moment import Calendar, dunnable, effective_due
from rules.model import ContactWindow
from rules.state import AccountState, PlatformState

_AT_ONCE = datetime.min.replace(tzinfo=ZoneInfo("UTC"))  # a wakeup any tick satisfies


class Wakeups:
    def __init__(self, calendar: Calendar, lookahead: int | None, window: ContactWindow | None,
                 contact: ContactPolicy):
        self.calendar = calendar
        self.lookahead = lookahead  # how many days before a due date invoice rules can fire (None: any)
        self.window = window
        self.contact = contact

    def wakeup(self, state: AccountState, platform: PlatformState) -> datetime | None:
        """The earliest instant a tick could change this account; ticks before it may be skipped.

        None means no tick will change anything until an event arrives. A skipped tick and an applied one
        leave the same notices: day facts change only at local midnight, the contact window only at its
        edges, and anything an event changed makes the next tick look (dirty).
        """
        since = state.evaluated_until
        if since is None or state.dirty or state.platform_revision != platform.revision:
            return _AT_ONCE
        zone = self.calendar.zone_of(state)
        local = since.astimezone(zone)
        tomorrow = local.date() + timedelta(days=1)
        next_day = self._next_interesting_day(state, platform, zone, tomorrow)
        candidates = [] if next_day is None else [datetime.combine(next_day, time(0), tzinfo=zone)]
        window = self.window
        if state.pending and window is not None:
            opening = datetime.combine(local.date(), window.start, tzinfo=zone)
            if opening <= since:
                opening = datetime.combine(local.date() + timedelta(days=1), window.start, tzinfo=zone)
            candidates.append(opening)
        expiring = [standing.until for standing in state.flags.values() if standing.until is not None]
        if expiring:  # a flag ends after its last day (rules/engine/treatment.py)
            candidates.append(datetime.combine(min(expiring) + timedelta(days=1), time(0), tzinfo=zone))
        if state.pending and (self.contact.channels or state.contact_hours):  # a channel's or the customer's opens
            candidates.extend(self.contact.openings(state, since, zone))
        for pending in state.pending:  # a retry waits for its delay
            if pending.not_before is not None and pending.not_before > since:
                candidates.append(pending.not_before)
        return min(candidates) if candidates else None

    def _next_interesting_day(self, state: AccountState, platform: PlatformState, zone: ZoneInfo,
                              tomorrow: date) -> date | None:
        """The first local day from tomorrow on whose start could change something for this account.

        In an episode, with notices waiting or an arrangement running, that is every day. Otherwise only two
        days per open invoice matter: when invoice rules can first see it, and the day after it falls due."""
        running = any(arrangement.status in ("active", "offered") for arrangement in state.arrangements.values())
        if state.episode is not None or state.pending or running:
            return tomorrow
        if not any(invoice.status == "open" for invoice in state.invoices.values()):
            return None
        if self.lookahead is None:
            return tomorrow
        earliest = None
        outages = self.calendar.outages(platform, zone)
        for invoice in state.invoices.values():
            if not dunnable(invoice):
                continue
            due = effective_due(invoice, outages)
            for day in (due - timedelta(days=self.lookahead), due + timedelta(days=1)):
                if day <= tomorrow:
                    return tomorrow
                if earliest is None or day < earliest:
                    earliest = day
        return earliest
