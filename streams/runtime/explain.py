"""Why did this account get this notice: a report of an account's standing and its audit trail.

The same report backs `GET /accounts/{id}` on the worker, `dunning explain ACCOUNT`, and
`dunning simulate --explain`. A worker holds only the recent part of the trail (the case file of an open
delinquency episode: its events and notices); every line is on the audit topic. The simulator
has the whole trail and passes it in.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.engine import Engine, notice_id
from rules.engine.contact import describe_hours
from rules.state import AccountState, JournalEntry, PlatformState
from schemas.notices import is_notice_line
from streams.runtime.settings import TopicNames


def account_report(engine: Engine, state: AccountState, platform: PlatformState, at: datetime | None,
                   trail: list[JournalEntry] | None = None, audit_topic: str = TopicNames().audit) -> dict[str, Any]:
    """A JSON-ready picture of the account at `at` (its last evaluation if None), with its whole audit `trail`
    when the caller has it, else the recent part the state holds and where the rest is."""
    at = at or state.evaluated_until or datetime.now().astimezone()
    zone = engine.zone_of(state)
    today = at.astimezone(zone).date()
    invoices = []
    for invoice in state.invoices.values():
        due = engine.effective_due(invoice, platform, zone)
        invoices.append({
            "invoice_id": invoice.invoice_id, "currency": invoice.currency, "amount": str(invoice.amount),
            "paid": str(invoice.paid), "balance": str(invoice.balance), "status": invoice.status,
            "disputed": invoice.disputed, "due_date": invoice.due_date.isoformat(),
            "effective_due_date": due.isoformat(),
            "days_past_due": (today - due).days if invoice.status == "open" else None,
        })
    episode = state.episode
    recent = sorted([*state.case_events, *state.case_notices], key=lambda line: line.at)
    return {
        "account_id": state.account_id,
        "as_of": at.isoformat(),
        "timezone": zone.key,
        "risk_tier": state.risk_tier,
        "balances": {currency: {"open": str(p.open_amount), "overdue": str(p.overdue_amount),
                                "days_past_due": p.days_past_due}
                     for currency, p in engine.portfolio(state, platform, at).items()},
        "credit": {currency: str(amount) for currency, amount in state.credit.items()},
        "invoices": invoices,
        "episode": None if episode is None else {
            "episode_id": episode.episode_id, "started_at": episode.started_at.isoformat(),
            "stages": episode.done, "open_handoffs": sorted(episode.open_handoffs)},
        "arrangements": [{"arrangement_id": a.arrangement_id, "kind": a.kind, "status": a.status,
                          "agreed_at": a.agreed_at.isoformat()} for a in state.arrangements.values()],
        "flags": [{"flag": flag, "since": standing.since.isoformat(),
                   "until": standing.until.isoformat() if standing.until else None, "reference": standing.reference}
                  for flag, standing in sorted(state.flags.items())],
        "holds": [{"first": hold.first.isoformat(), "last": hold.last.isoformat() if hold.last else None,
                   "reage": hold.reage} for hold in state.holds],
        "restrictions": [{"action": action, "rule_id": r.rule_id, "applied_at": r.applied_at.isoformat(),
                          "notice_id": notice_id(state.account_id, r.key)}
                         for action, r in sorted(state.restrictions.items())],
        "waiting": [{"rule_id": p.rule_id, "kind": p.kind, "since": p.trigger_at.isoformat(),
                     "waiting_for": p.deferred_by, **({"replaces": p.replaces} if p.replaces else {})}
                    for p in state.pending],
        # what the contact rules know (README, Contact rules): receipts awaited, dead channels, conversations
        "contact": {"unreachable_channels": state.unreachable, "ceased": state.ceased,
                    "last_conversation": state.conversation_at.isoformat() if state.conversation_at else None,
                    "awaiting_receipt": [a.notice_id for a in state.awaiting],
                    "customer_hours": describe_hours(state.contact_hours) or None},
        "timeline": [{"at": e.at.isoformat(), "what": e.what, "id": e.id, "detail": e.detail}
                     for e in (trail if trail is not None else recent)],
        "older_lines": None if trail is not None else f"every line of this account's trail is on topic "
                                                       f"{audit_topic}, key {state.account_id}",
    }


def _line(entry: dict[str, Any], zone: ZoneInfo) -> list[str]:
    stamp = datetime.fromisoformat(entry["at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    detail = dict(entry["detail"])
    what = entry["what"]
    if is_notice_line(what):
        rule = detail.pop("rule_id", None)  # none on a decision no rule made
        if what == "notice.handoff":
            head = f"HANDOFF {detail.pop('action')} -> {detail.pop('to')}"
        elif "channel" in detail:
            head = f"{what.removeprefix('notice.').upper()} via {detail.pop('channel')} " \
                   f"(template {detail.pop('template')})"
        else:  # a decision to billing: its amounts are on the decision line before it
            head = what.removeprefix("notice.").upper()
        body = [f"{head}  [{entry['id']}]"] + ([f"    rule {rule}"] if rule else [])
        body += [f"    {name.replace('_', ' ')}: {value}" for name, value in detail.items()]
    elif what.startswith("decision."):
        body = [f"{what.removeprefix('decision.')}: {entry['id']}  " + " ".join(f"{k}={v}" for k, v in detail.items())]
    else:
        body = [f"{what} {entry['id']}  " + " ".join(f"{k}={v}" for k, v in detail.items())]
    return [f"  {stamp}  {body[0].rstrip()}"] + [" " * (len(stamp) + 4) + line for line in body[1:]]


def render_report(report: dict[str, Any]) -> str:
    zone = ZoneInfo(report["timezone"])
    lines = [f"account {report['account_id']} (timezone {report['timezone']}, risk {report['risk_tier']})"]
    for currency, balance in sorted(report["balances"].items()):
        lines.append(f"  owes {balance['open']} {currency}, of which {balance['overdue']} overdue "
                     f"(days past due {balance['days_past_due']})")
    if report["episode"]:
        lines.append(f"  in delinquency episode {report['episode']['episode_id']}")
    for flag in report["flags"]:
        lines.append(f"  flagged {flag['flag']} since {flag['since']}" + (f" until {flag['until']}" if flag["until"]
                     else "") + (f" (reference {flag['reference']})" if flag["reference"] else ""))
    for restriction in report["restrictions"]:
        lines.append(f"  restricted: {restriction['action']} since {restriction['applied_at']} "
                     f"(rule {restriction['rule_id']})")
    contact = report["contact"]
    if contact["unreachable_channels"] or contact["ceased"]:
        lines.append(f"  unreachable: {', '.join(contact['unreachable_channels']) or '-'}; direct contact "
                     f"{'ended (' + contact['ceased'].replace('_', ' ') + ')' if contact['ceased'] else 'allowed'}")
    if contact["customer_hours"]:
        lines.append(f"  contact hours the customer asked for: {contact['customer_hours']}")
    for entry in report["timeline"]:
        lines.extend(_line(entry, zone))
    if report["older_lines"]:
        lines.append(f"  (recent lines only: {report['older_lines']})")
    return "\n".join(lines) + "\n"
