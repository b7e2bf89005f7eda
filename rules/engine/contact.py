"""What the engine knows of its contacts with an account, and the contact policy beyond one window and one pair of
limits: each channel's own window (per weekday) and caps, and blackout days. Waiting defers, never drops."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rules.contact_policy import Blackout, ChannelPolicy
from rules.state import AccountState
from schemas.events import ContactRecorded, Hours
from schemas.types import WEEKDAYS, by_weekday

if TYPE_CHECKING:  # moment shows contact_facts to rules: these two import it
    from rules.engine.ledger import When
    from rules.engine.moment import Calendar

WEEK_DAYS = 7


def contact_facts(state: AccountState, local: datetime) -> dict[str, Any]:
    """unreachable_channels: channels a permanent delivery failure (or a wrong number) closed; delivered_contacts:
    notices of this episode a receipt said were delivered; days_since_conversation: local days since the latest
    right-party conversation (none: never); contact_ceased: the customer asked us to stop, or named an attorney."""
    episode, talked = state.episode, state.conversation_at
    return {"unreachable_channels": len(state.unreachable),
            "delivered_contacts": episode.delivered if episode is not None else 0,
            "days_since_conversation": None if talked is None else
            (local.date() - talked.astimezone(local.tzinfo).date()).days,
            "contact_ceased": state.ceased is not None}


def customer_hours(given: dict[str, dict[str, Hours]]) -> dict[str, list[list[int]]]:
    """account.updated contact_hours as the state keeps them: per channel, seven days of [start, end] minutes
    ([]: no contact that day)."""
    return {channel: [[] if hours is None else [_minutes(hours.start), _minutes(hours.end)]
                      for hours in by_weekday(days)] for channel, days in given.items()}


def describe_hours(kept: dict[str, list[list[int]]]) -> str:
    """'*: mon-fri 18:00-21:00, sat 10:00-12:00; call: ...': days in a row with the same hours as a range, days
    without contact left out."""
    described = []
    for channel, days in kept.items():
        runs: list[list[int]] = []  # [first day, last day]
        for day, span in enumerate(days):
            if span and runs and runs[-1][1] == day - 1 and days[runs[-1][0]] == span:
                runs[-1][1] = day
            elif span:
                runs.append([day, day])
        described.append(f"{channel}: " + ", ".join(
            f"{WEEKDAYS[first]}{'-' + WEEKDAYS[last] if last > first else ''} "
            f"{_clock(days[first][0])}-{_clock(days[first][1])}" for first, last in runs))
    return "; ".join(described)


def _minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _in_span(span: list[int], minute: int) -> bool:
    return bool(span) and span[0] <= minute < span[1]


# What a contact.recorded outcome does beyond counting against the channel's caps.
_CEASING = ("cease_requested", "attorney_represented")


class ContactPolicy:
    def __init__(self, channels: dict[str, ChannelPolicy], blackout: Blackout | None, calendar: Calendar):
        self.channels = channels
        self.blackout = blackout
        self.calendar = calendar
        self.capped = {name for name, policy in channels.items() if policy.per_day or policy.per_week}
        self.active = bool(channels) or blackout is not None

    def recorded(self, state: AccountState, event: ContactRecorded, when: When) -> dict[str, str]:
        """A collector's or an agency's contact attempt: counted on the channel (whatever its outcome); a
        right-party conversation starts quiet periods, a wrong number closes the channel, a cease request or an
        attorney's representation ends direct contact for the account."""
        detail = {"channel": event.channel, "by": event.by, "outcome": event.outcome}
        local = event.occurred_at.astimezone(self.calendar.zone_of(state))
        self.count(state, event.channel, local.date())
        outcome = event.outcome
        if outcome == "right_party" and (state.conversation_at is None or event.occurred_at > state.conversation_at):
            state.conversation_at = event.occurred_at
            quiet = [f"{name} until {(event.occurred_at + policy.quiet_after_conversation).isoformat()}"
                     for name, policy in self.channels.items() if policy.quiet_after_conversation]
            if quiet:
                detail["quiet"] = ", ".join(quiet)
        elif outcome == "wrong_number" and event.channel not in state.unreachable:
            state.unreachable.append(event.channel)
            detail["unreachable"] = event.channel
        elif outcome in _CEASING and state.ceased is None:
            state.ceased = outcome
            detail["ceased"] = "no more reminders, urgent notices or offers"
        return detail

    def holds(self, state: AccountState, channel: str, local: datetime) -> str | None:
        """What keeps a contact on this channel from going now (None: nothing): a blackout day, a quiet period,
        the channel's window, the hours the customer asked for, or the channel's caps."""
        today = local.date()
        if self.blackout is not None and today in self.blackout:
            return "blackout"
        policy = self.channels.get(channel)
        if policy is not None:
            quiet, talked = policy.quiet_after_conversation, state.conversation_at
            if quiet is not None and talked is not None and local < talked + quiet:
                return "quiet_period"
            if policy.window is not None:
                window = policy.window_on(today.weekday())
                if window is None or not window.contains(local.time()):
                    return "channel_window"
        if state.contact_hours:
            days = state.contact_hours.get(channel) or state.contact_hours.get("*")
            if days is not None and not _in_span(days[today.weekday()], local.hour * 60 + local.minute):
                return "customer_hours"
        if policy is None:
            return None
        if channel in self.capped:
            days = state.channel_days.get(channel, ())
            if policy.per_day is not None and sum(1 for day in days if day == today) >= policy.per_day:
                return "channel_limits"
            week_start = today - timedelta(days=WEEK_DAYS - 1)
            if policy.per_week is not None and sum(1 for day in days if day >= week_start) >= policy.per_week:
                return "channel_limits"
        return None

    def count(self, state: AccountState, channel: str, today: date) -> None:
        """A contact on a capped channel (ours or a collector's); only the last 7 local days are kept."""
        if channel not in self.capped:
            return
        week_start = today - timedelta(days=WEEK_DAYS - 1)
        days = state.channel_days.setdefault(channel, [])
        days[:] = [day for day in days if day >= week_start]
        days.append(today)

    def openings(self, state: AccountState, since: datetime, zone: ZoneInfo) -> list[datetime]:
        """When a channel's window or the customer's hours next open, or a quiet period ends, after `since`: a
        waiting notice may go then."""
        found: list[datetime | None] = []
        talked = state.conversation_at
        if talked is not None:
            found.extend(talked + policy.quiet_after_conversation for policy in self.channels.values()
                         if policy.quiet_after_conversation and talked + policy.quiet_after_conversation > since)
        for policy in self.channels.values():
            if policy.window is not None:
                windows = (policy.window_on(weekday) for weekday in range(7))
                found.append(_next_opening(since, zone, [None if window is None else window.start
                                                          for window in windows]))
        for days in state.contact_hours.values():
            found.append(_next_opening(since, zone, [time(*divmod(span[0], 60)) if span else None for span in days]))
        return [opening for opening in found if opening is not None]


def _next_opening(since: datetime, zone: ZoneInfo, starts: list[time | None]) -> datetime | None:
    """The first opening after `since` within a week, `starts` being each weekday's opening (None: closed)."""
    first = since.astimezone(zone).date()
    for ahead in range(WEEK_DAYS + 1):
        day = first + timedelta(days=ahead)
        start = starts[day.weekday()]
        opening = None if start is None else datetime.combine(day, start, tzinfo=zone)
        if opening is not None and opening > since:
            return opening
    return None
