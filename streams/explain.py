"""Readable timelines: what happened to an account, what it was sent, and which rule and facts caused it."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from rules.state import AccountState, JournalEntry
from schemas.notices import Notice


def _when(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _detail(detail: dict[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in detail.items())


def _notice_lines(notice: Notice, zone: ZoneInfo) -> list[str]:
    if notice.kind == "handoff":
        head = f"HANDOFF {notice.action} -> {notice.to}"
    else:
        head = f"{notice.kind.upper()} via {notice.channel} (template {notice.template})"
    lines = [f"{head}  [{notice.notice_id}]",
             f"    rule {notice.rule_id} (ruleset {notice.ruleset_version}), episode {notice.episode_id or '-'}"]
    if notice.facts:
        lines.append("    facts: " + ", ".join(f"{k}={v}" for k, v in notice.facts.items()))
    trigger = notice.trigger
    if trigger.deferred_by:
        lines.append(f"    decided {_when(trigger.at, zone)} by {trigger.event_id}; "
                     f"waited for: {', '.join(trigger.deferred_by)}")
    owed = ", ".join(f"{amount} {currency}" for currency, amount in notice.overdue.items()) or "nothing"
    lines.append(f"    days past due {notice.days_past_due}, overdue {owed}")
    return lines


def _entry_lines(entry: JournalEntry, notices: dict[str, Notice], zone: ZoneInfo) -> list[str]:
    notice = notices.get(entry.id)
    if notice is not None:
        body = _notice_lines(notice, zone)
    elif entry.what.startswith("decision."):
        body = [f"{entry.what.removeprefix('decision.')}: {entry.id}  {_detail(entry.detail)}".rstrip()]
    else:
        body = [f"{entry.what} {entry.id}  {_detail(entry.detail)}".rstrip()]
    stamp = _when(entry.at, zone)
    return [f"  {stamp}  {body[0]}"] + [" " * (len(stamp) + 4) + line for line in body[1:]]


def render_account(state: AccountState, notices: dict[str, Notice], default_zone: str) -> str:
    zone = ZoneInfo(state.timezone or default_zone)
    lines = [f"account {state.account_id} (timezone {zone.key}, risk {state.risk_tier})"]
    for entry in state.journal:
        lines.extend(_entry_lines(entry, notices, zone))
    return "\n".join(lines) + "\n"


def render_timeline(accounts: dict[str, AccountState], notices: list[Notice], default_zone: str) -> str:
    by_id = {notice.notice_id: notice for notice in notices}
    return "\n".join(render_account(accounts[a], by_id, default_zone) for a in sorted(accounts))
