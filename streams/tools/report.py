"""`dunning report`: what each variant and rule achieves (rules/report.py), from the audit topic or a simulator's
audit file, as a table, JSON, or a chart."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from rules.report import BUCKET_NAMES, WINDOWS, Figures, PolicyReport
from schemas.audit import AuditRecord, audit_adapter
from streams.runtime.settings import Settings


def read_audit_file(path: Path, errors: TextIO) -> tuple[list[AuditRecord], int]:
    """The lines of a `dunning simulate --audit` file, and how many were not audit lines (each reported)."""
    from streams.tools.args import read_jsonl

    return read_jsonl(path, audit_adapter.validate_json, lambda exc: f"not an audit line: {exc.errors()[0]['msg']}",
                      errors)


async def read_audit_topic(settings: Settings, errors: TextIO) -> tuple[list[AuditRecord], int]:
    """Every line on the audit topic; an account's lines stay in their order (one partition per account)."""
    from streams.tools.audit_check import read_topic

    records, rejected = [], 0
    for message in await read_topic(settings.kafka_client_options(), settings.topic.audit):
        try:
            records.append(audit_adapter.validate_json(message.value or b""))
        except ValidationError as exc:
            rejected += 1
            print(f"{message.topic}/{message.partition}@{message.offset}: not an audit line: "
                  f"{exc.errors()[0]['msg']}", file=errors)
    return records, rejected


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(name: str, figures: Figures, accounts: int | None = None) -> list[str]:
    roll = figures.roll.get(f"{BUCKET_NAMES[0]}>{BUCKET_NAMES[1]}")
    return [name, "" if accounts is None else str(accounts), str(figures.episodes), str(figures.notices),
            *(f"{_percent(figures.cured[d].value)} of {figures.cured[d].judged}" for d in WINDOWS),
            _number(figures.median_days_to_cure), _number(figures.per_cure), _percent(roll.value if roll else None)]


def _delivery_row(name: str, figures: Figures) -> list[str]:
    return [name, str(figures.notices), str(figures.delivered), str(figures.failed),
            _percent(figures.delivery_rate), f"{_percent(figures.contact_rate)} of {figures.episodes}"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
                     for row in [header, *rows])


def render(report: PolicyReport) -> str:
    cured = [f"cured {d}d" for d in WINDOWS]
    header = ["variant", "accounts", "episodes", "contacts", *cured, "median days", "contacts/cure", "roll 1-30>31+"]
    as_of = report.horizon.isoformat(timespec="seconds")
    lines = [f"dunning report as of {as_of} (cure: the episode ended by a payment; rates count only episodes old "
             "enough to judge)", "",
             _table(header, [_row(name, figures, report.accounts.get(name)) for name, figures in
                             report.variants.items()])]
    for comparison in report.comparisons:
        lines.append(f"\n{comparison.verdict}")
    for variant, rules in report.rules.items():
        lines += ["", f"rules of {variant} (from each rule's first notice in an episode)",
                  _table(["rule", "", "episodes", "notices", *cured, "median days", "notices/cure", "roll to next"],
                         [_row(rule, figures) for rule, figures in rules.items()])]
    if any(figures.delivered or figures.failed for figures in report.variants.values()):
        lines += ["", "delivery (receipts from the notification services)",
                  _table(["variant / rule", "contacts", "delivered", "failed", "delivery rate", "contact rate"],
                         [_delivery_row(name, figures) for variant, figures in report.variants.items()
                          for name, figures in [(variant, figures), *((f"  {rule}", f) for rule, f in
                                                                      report.rules.get(variant, {}).items())]])]
    rolls = [f"  {variant}: " + ", ".join(f"{step} {_percent(rate.value)} of {rate.judged}"
                                          for step, rate in figures.roll.items())
             for variant, figures in report.variants.items() if figures.roll]
    if rolls:
        lines += ["", "roll rates between aging buckets", *rolls]
    return "\n".join(lines) + "\n"


def as_json(report: PolicyReport) -> dict[str, Any]:
    def figures(f: Figures) -> dict[str, Any]:
        return {"episodes": f.episodes, "notices": f.notices, "handoffs": f.handoffs,
                "cured": {str(d): {"cured": r.cured, "judged": r.judged, "rate": r.value} for d, r in f.cured.items()},
                "median_days_to_cure": f.median_days_to_cure, "notices_per_cure": f.per_cure,
                "roll": {step: {"rolled": r.cured, "judged": r.judged, "rate": r.value} for step, r in f.roll.items()},
                "delivered": f.delivered, "failed": f.failed, "delivery_rate": f.delivery_rate,
                "reached": f.reached, "contact_rate": f.contact_rate}

    return {"as_of": report.horizon.isoformat(timespec="seconds"), "accounts": report.accounts,
            "variants": {name: figures(f) for name, f in report.variants.items()},
            "rules": {variant: {rule: figures(f) for rule, f in rules.items()}
                      for variant, rules in report.rules.items()},
            "comparisons": [{"baseline": c.baseline, "variant": c.variant, "difference": c.difference,
                             "low": c.low, "high": c.high, "verdict": c.verdict} for c in report.comparisons]}


def draw(report: PolicyReport, path: Path) -> None:
    """The report as a picture: each variant's cure rates with their intervals, and each rule's 30-day cure rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(report.variants)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 2]})
    width = 0.8 / len(WINDOWS)
    for offset, days in enumerate(WINDOWS):
        rates = [report.variants[v].cured[days] for v in variants]
        values = [(r.value or 0) * 100 for r in rates]
        errors = [196 * ((r.value or 0) * (1 - (r.value or 0)) / r.judged) ** 0.5 if r.judged else 0 for r in rates]
        positions = [i + (offset - (len(WINDOWS) - 1) / 2) * width for i in range(len(variants))]
        left.bar(positions, values, width, yerr=errors, capsize=4, label=f"cured within {days} days")
    left.set_xticks(range(len(variants)), [f"{v}\n{report.variants[v].episodes} episodes" for v in variants])
    left.set_ylabel("episodes cured (%), 95% interval")
    left.set_ylim(0, 100)
    left.legend(loc="upper left")
    verdicts = "\n".join(c.verdict for c in report.comparisons)
    left.set_title(verdicts or "one variant", fontsize=8, wrap=True)
    rules = sorted({rule for rules in report.rules.values() for rule in rules})
    height = 0.8 / max(len(variants), 1)
    for offset, variant in enumerate(variants):
        got = report.rules.get(variant, {})
        values = [((got[r].cured[30].value or 0) * 100) if r in got else 0 for r in rules]
        right.barh([i + offset * height for i in range(len(rules))], values, height, label=variant)
    right.set_yticks([i + (len(variants) - 1) * height / 2 for i in range(len(rules))], rules, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("episodes cured within 30 days of the rule's first notice (%)")
    right.set_xlim(0, 100)
    right.legend(loc="lower right")
    figure.suptitle(f"dunning report as of {report.horizon:%Y-%m-%d}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
