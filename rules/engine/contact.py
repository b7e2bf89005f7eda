"""What the engine knows of its contacts with an account, and the contact policy beyond one window and one pair of
limits: each channel's own window (per weekday) and caps, and blackout days. Waiting defers, never drops."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rules.contact_policy import Blackout, ChannelPolicy
from rules.state import AccountState

WEEK_DAYS = 7


def contact_facts(state: AccountState) -> dict[str, Any]:
    """unreachable_channels: channels a permanent delivery failure closed; delivered_contacts: notices of this
    episode a receipt said were delivered."""
    episode = state.episode
    return {"unreachable_channels": len(state.unreachable),
            "delivered_contacts": episode.delivered if episode is not None else 0}


class ContactPolicy:
    def __init__(self, channels: dict[str, ChannelPolicy], blackout: Blackout | None):
        self.channels = channels
        self.blackout = blackout
        self.capped = {name for name, policy in channels.items() if policy.per_day or policy.per_week}
        self.active = bool(channels) or blackout is not None

    def holds(self, state: AccountState, channel: str, local: datetime) -> str | None:
        """What keeps a contact on this channel from going now (None: nothing): a blackout day, the channel's
        window, or its caps."""
        today = local.date()
        if self.blackout is not None and today in self.blackout:
            return "blackout"
        policy = self.channels.get(channel)
        if policy is None:
            return None
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

    def openings(self, since: datetime, zone: ZoneInfo) -> list[datetime]:
        """When a channel's window next opens after `since`: a waiting notice may go then."""
        local = since.astimezone(zone)
        found = []
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
