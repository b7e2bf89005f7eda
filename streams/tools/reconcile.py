"""`dunning reconcile`: billing's statements against what the engine holds, offline.

The events (if given) and the statements go through the engine in time order (at one instant, events first), as a
worker would apply them; each statement's differences are what `decision.reconciled` records on the audit topic
(rules/engine/reconcile.py). No clock ticks: differences depend on balances, not on time rules.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import TextIO

from rules.engine.reconcile import DIFFERENCE_KINDS
from rules.policy import PolicyEngine
from rules.simulator import Simulation
from schemas.events import InputEvent


def reconcile(engine: PolicyEngine, events: list[InputEvent], statements: list[InputEvent], out: TextIO,
              as_json: bool = False) -> Counter[str]:
    """Prints every statement's differences (or that it matched, or why it was ignored); returns them by kind."""
    ordered = sorted([(event.occurred_at, 0, n, event) for n, event in enumerate(events)]
                     + [(event.occurred_at, 1, n, event) for n, event in enumerate(statements)],
                     key=lambda item: item[:3])
    simulation = Simulation(engine, audit=[])
    totals: Counter[str] = Counter()
    for _, _, _, event in ordered:
        before = len(simulation.audit)
        simulation.feed(event)
        if event.type != "account.statement":
            continue
        lines = simulation.audit[before:]
        applied = lines[0]
        found = next((line.detail for line in lines if line.what == "decision.reconciled"), {})
        differences = {kind: found[kind].split("; ") for kind in DIFFERENCE_KINDS if kind in found}
        for kind, items in differences.items():
            totals[kind] += len(items)
        if as_json:
            out.write(json.dumps({"account_id": event.account_id, "event_id": event.event_id,
                                  "as_of": event.as_of.isoformat(), "ignored": applied.detail.get("ignored"),
                                  "stale": applied.detail.get("stale"), "differences": differences}) + "\n")
            continue
        head = f"{event.account_id} statement {event.event_id} as of {event.as_of.isoformat()}"
        if "ignored" in applied.detail:
            out.write(f"{head}: ignored ({applied.detail['ignored']})\n")
        elif not differences:
            out.write(f"{head}: matches\n")
        else:
            out.write(f"{head}:" + (f" stale ({applied.detail['stale']})" if "stale" in applied.detail else "") + "\n")
            for kind, items in differences.items():
                out.writelines(f"  {kind}: {item}\n" for item in items)
    if not as_json:
        out.write("differences: " + (", ".join(f"{kind} {totals[kind]}" for kind in DIFFERENCE_KINDS if totals[kind])
                                     or "none") + "\n")
    return totals
