"""What the engine knows of its contacts with an account, and the contact policy beyond one window and one pair of
limits: each channel's own window (per weekday) and caps, and blackout days. Waiting defers, never drops."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from rules.contact_policy import Blackout, ChannelPolicy
from rules.state import AccountState
from schemas.events import ContactRecorded

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
        """What keeps a contact on this channel from going now (None: nothing): a blackout day, the channel's
        window, or its caps."""
        today = local.date()
        if self.blackout is not None and today in self.blackout:
            return "blackout"
        policy = self.channels.get(channel)
        if policy is None:
            return None
        quiet, talked = policy.quiet_after_conversation, state.conversation_at
        if quiet is not None and talked is not None and local < talked + quiet:
            return "quiet_period"
        if policy.window is not None:
            window = policy.window_on(today.weekday())
            if window is None or not window.contains(local.time()):
                return "channel_window"
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
        """When a channel's window next opens, or its quiet period ends, after `since`: a waiting notice may go
        then."""
        local = since.astimezone(zone)
        found = []
        talked = state.conversation_at
        if talked is not None:
            found.extend(talked + policy.quiet_after_conversation for policy in self.channels.values()
                         if policy.quiet_after_conversation and talked + policy.quiet_after_conversation > since)
        for policy in self.channels.values():
            if policy.window is None:
                continue
            for ahead in range(WEEK_DAYS + 1):
                day = local.date() + timedelta(days=ahead)
                window = policy.window_on(day.weekday())
                opening = None if window is None else datetime.combine(day, window.start, tzinfo=zone)
                if opening is not None and opening > since:
                    found.append(opening)
                    break
        return found
