"""Writes the JSON Schema of every input and output type into schemas/json/ (or checks they are current)."""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter

from schemas import audit, deadletter, events, notices, rulesets

SCHEMA_DIR = Path(__file__).parent / "json"

CONTRACTS: dict[str, object] = {
    "invoice.issued": events.InvoiceIssued,
    "invoice.adjusted": events.InvoiceAdjusted,
    "invoice.cancelled": events.InvoiceCancelled,
    "payment.received": events.PaymentReceived,
    "payment.failed": events.PaymentFailed,
    "arrangement.agreed": events.ArrangementAgreed,
    "arrangement.cancelled": events.ArrangementCancelled,
    "dispute.opened": events.DisputeOpened,
    "dispute.resolved": events.DisputeResolved,
    "debt.written_off": events.DebtWrittenOff,
    "account.updated": events.AccountUpdated,
    "platform.outage": events.PlatformOutage,
    "clock.tick": events.ClockTick,
    "account.flagged": events.AccountFlagged,
    "account.unflagged": events.AccountUnflagged,
    "account.statement": events.AccountStatement,
    "notice.delivered": events.NoticeDelivered,
    "notice.failed": events.NoticeFailed,
    "contact.recorded": events.ContactRecorded,
    "input-event": events.InputEvent,
    "notice": notices.Notice,
    "dead-letter": deadletter.DeadLetter,
    "audit": audit.AuditRecord,
    "ruleset": rulesets.PublishedRuleset,
}


def rendered() -> dict[str, str]:
    files = {}
    for name, contract in CONTRACTS.items():
        schema = TypeAdapter(contract).json_schema()
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"dunning-stream/{name}",
                  "title": schema.get("title", name), **schema}
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files that are missing, differ from the models, or no longer belong."""
    expected = rendered()
    present = {path.name for path in directory.glob("*.schema.json")} if directory.exists() else set()
    problems = [name for name, text in expected.items()
                if not (directory / name).exists() or (directory / name).read_text() != text]
    return problems + sorted(present - set(expected))


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    expected = rendered()
    for path in directory.glob("*.schema.json"):
        if path.name not in expected:
            path.unlink()
    for name, text in expected.items():
        (directory / name).write_text(text)
    return sorted(expected)
