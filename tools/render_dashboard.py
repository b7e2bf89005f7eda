"""Renders a PNG of the Grafana dashboard's main panels from a simulated run, for docs/dashboard.png.

No Kafka, Prometheus or Grafana: a generated month goes through the offline simulator (the same engine the worker
runs), events and clock ticks fed one by one in `Simulation.run`'s order, and the portfolio is sampled once per
simulated day the way the worker's gauges compute it (`Engine.portfolio` per account and currency, summed):

    overdue rate by currency      accounts with an overdue balance / accounts with an open balance
    aging: accounts by bucket     accounts by the bucket of their oldest overdue debt, stacked (one currency)
    notices by kind               cumulative notices issued, per kind
    handoffs by target and action cumulative hand-offs, per action and target
    bad-debt rate by currency     written off / billed over the trailing 30 days (dunning:bad_debt_rate:30d)
    written off, settled, recovered  cumulative amounts written off by reason, paid under settlements, and
                                  recovered after a write-off (one currency)

The counters are cumulative counts (the dashboard shows them as rates per hour).

    .venv/bin/python tools/render_dashboard.py --accounts 300 --days 90 --out docs/dashboard.png
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rules.engine import AGING_BUCKETS, Engine, aging_bucket  # noqa: E402
from rules.loader import load_ruleset  # noqa: E402
from rules.simulator import Simulation  # noqa: E402
from schemas.events import InputEvent, parse_event, tick  # noqa: E402
from schemas.notices import NOTICE_KINDS  # noqa: E402
from streams.generators.generate import generate, to_jsonl_bytes  # noqa: E402

# The dashboard's aging colours (Grafana's named colours, as hex).
BUCKET_COLOURS = {"current": "#73BF69", "1-30": "#FADE2A", "31-60": "#FF9830", "61-90": "#F2495C",
                  "91+": "#C4162A"}


@dataclass
class Sample:
    at: datetime
    accounts_open: Counter[str] = field(default_factory=Counter)      # currency -> accounts
    accounts_overdue: Counter[str] = field(default_factory=Counter)
    aging_accounts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (currency, bucket) -> accounts
    open_amount: dict[str, Decimal] = field(default_factory=dict)
    overdue_amount: dict[str, Decimal] = field(default_factory=dict)
    notices: Counter[str] = field(default_factory=Counter)            # kind -> cumulative notices
    handoffs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, target) -> cumulative
    billed: Counter[str] = field(default_factory=Counter)             # currency -> cumulative amount invoiced
    written_off: Counter[tuple[str, str]] = field(default_factory=Counter)  # (currency, reason) -> cumulative
    settled: Counter[str] = field(default_factory=Counter)            # currency -> paid under settlements
    recovered: Counter[str] = field(default_factory=Counter)          # currency -> recovered after a write-off

    def overdue_rate(self, currency: str) -> float | None:
        open_ = self.accounts_open[currency]
        return self.accounts_overdue[currency] / open_ if open_ else None

    def written_off_in(self, currency: str) -> Decimal:
        return sum((amount for (c, _), amount in self.written_off.items() if c == currency), Decimal(0))


def bad_debt_rate(samples: list[Sample], index: int, currency: str, days: int = 30) -> float | None:
    """Written off / billed between the sample `days` before (or the first) and this one."""
    now, then = samples[index], samples[max(0, index - days)]
    billed = now.billed[currency] - then.billed[currency]
    return float((now.written_off_in(currency) - then.written_off_in(currency)) / billed) if billed else None


def timeline(events: Iterable[InputEvent], every: timedelta, until: datetime) -> Iterator[InputEvent]:
    """Events with clock ticks in between, in exactly the order `Simulation.run(events, every, until)` feeds them."""
    next_tick: datetime | None = None
    for event in events:
        next_tick = next_tick or event.occurred_at
        while next_tick <= event.occurred_at:
            yield tick(next_tick)
            next_tick += every
        yield event
    next_tick = next_tick or until
    while next_tick <= until:
        yield tick(next_tick)
        next_tick += every


def sample(simulation: Simulation, at: datetime, notices_seen: int, previous: Sample | None,
           billed: Counter[str]) -> Sample:
    """The portfolio at `at` as the workers' gauges would sum it, and the counters so far."""
    result = Sample(at)
    for state in simulation.accounts.values():
        for currency, position in simulation.engine.portfolio(state, simulation.platform, at).items():
            result.accounts_open[currency] += 1
            result.open_amount[currency] = result.open_amount.get(currency, Decimal(0)) + position.open_amount
            if position.overdue_amount > 0:
                result.accounts_overdue[currency] += 1
                result.overdue_amount[currency] = (result.overdue_amount.get(currency, Decimal(0))
                                                   + position.overdue_amount)
            result.aging_accounts[(currency, aging_bucket(position.days_past_due))] += 1
    result.billed.update(billed)
    if previous is not None:
        for name in ("notices", "handoffs", "written_off", "settled", "recovered"):
            getattr(result, name).update(getattr(previous, name))
    for notice in simulation.notices[notices_seen:]:
        result.notices[notice.kind] += 1
        if notice.kind == "handoff":
            result.handoffs[(notice.action or "", notice.to or "")] += 1
        for currency, amount in (notice.written_off or {}).items():
            result.written_off[(currency, notice.reason)] += amount
        if notice.kind in ("settlement", "recovery"):
            (result.settled if notice.kind == "settlement" else result.recovered).update(notice.paid)
    return result


def simulate_daily(accounts: int, days: int, start: datetime, seed: int, rules: Path,
                   every: timedelta) -> tuple[Simulation, list[Sample]]:
    """Runs the generated stream through the simulator and samples it at the end of each simulated day."""
    raw = to_jsonl_bytes(generate(accounts, days, start, seed))
    events = [parse_event(line) for line in raw]
    simulation = Simulation(Engine(load_ruleset(rules)))
    until = start + timedelta(days=days)
    boundaries = [start + timedelta(days=day) for day in range(1, days + 1)]
    samples: list[Sample] = []
    seen = 0
    billed: Counter[str] = Counter()  # what the worker's dunning_billed_amount_total counts (no repeats here)

    def take(at: datetime) -> None:
        nonlocal seen
        samples.append(sample(simulation, at, seen, samples[-1] if samples else None, billed))
        seen = len(simulation.notices)

    for item in timeline(events, every, until):
        while len(samples) < len(boundaries) and boundaries[len(samples)] < item.occurred_at:
            take(boundaries[len(samples)])
        simulation.feed(item)
        if item.type == "invoice.issued":
            billed[item.currency] += item.amount
    while len(samples) < len(boundaries):
        take(boundaries[len(samples)])
    return simulation, samples


def render(samples: list[Sample], out: Path, title: str, aging_currency: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    days = [s.at for s in samples]
    currencies = sorted({c for s in samples for c in s.accounts_open})
    kinds = sorted({k for s in samples for k in s.notices}, key=NOTICE_KINDS.index)
    reasons = sorted({r for s in samples for (c, r) in s.written_off if c == aging_currency})
    handoff_keys = sorted({k for s in samples for k in s.handoffs})

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 15, "axes.titleweight": "bold",
                         "legend.fontsize": 11, "axes.grid": True, "grid.alpha": 0.3})
    fig, axes = plt.subplots(3, 2, figsize=(16, 15), dpi=100)
    fig.suptitle(title, fontsize=16)

    ax = axes[0][0]
    for currency in currencies:
        ax.plot(days, [s.overdue_rate(currency) for s in samples], linewidth=2.2, label=currency)
    ax.set_title("Overdue rate by currency")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(bottom=0)
    ax.set_ylabel("overdue accounts / open accounts")

    ax = axes[0][1]
    ax.stackplot(days, [[s.aging_accounts[(aging_currency, b)] for s in samples] for b in AGING_BUCKETS],
                 labels=list(AGING_BUCKETS), colors=[BUCKET_COLOURS[b] for b in AGING_BUCKETS], alpha=0.85)
    ax.set_title(f"Aging: accounts by bucket ({aging_currency})")
    ax.set_ylabel("accounts")
    ax.legend(loc="upper left", ncols=5, title="days past due")
    ax.set_ylim(0, max(sum(s.aging_accounts[(aging_currency, b)] for b in AGING_BUCKETS) for s in samples) * 1.3 or 1)

    ax = axes[1][0]
    for kind in kinds:
        ax.plot(days, [s.notices[kind] for s in samples], linewidth=2.2, label=kind)
    ax.set_title("Notices by kind")
    ax.set_ylabel("notices issued (cumulative)")

    ax = axes[1][1]
    for action, to in handoff_keys:
        ax.plot(days, [s.handoffs[(action, to)] for s in samples], linewidth=2.2, label=f"{action} {to}",
                linestyle="-" if action == "open" else "--")
    ax.set_title("Handoffs by target and action")
    ax.set_ylabel("hand-offs (cumulative)")

    ax = axes[2][0]
    for currency in currencies:
        ax.plot(days, [bad_debt_rate(samples, i, currency) for i in range(len(samples))], linewidth=2.2,
                label=currency)
    ax.set_title("Bad-debt rate by currency (30 days)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_ylabel("written off / billed, trailing 30 days")

    ax = axes[2][1]
    if reasons:
        ax.stackplot(days, [[float(s.written_off[(aging_currency, r)]) for s in samples] for r in reasons],
                     labels=[f"written off: {r}" for r in reasons], alpha=0.7)
    for name, values in (("settled", [s.settled[aging_currency] for s in samples]),
                         ("recovered", [s.recovered[aging_currency] for s in samples])):
        ax.plot(days, [float(v) for v in values], linewidth=2.2, label=name)
    ax.set_title(f"Written off, settled and recovered ({aging_currency})")
    ax.set_ylabel(f"{aging_currency} (cumulative)")

    for row in axes:
        for ax in row:
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=5, maxticks=10))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b", tz=samples[0].at.tzinfo))
            if ax is not axes[0][1]:
                ax.set_ylim(bottom=0)
            if ax is not axes[0][1] and ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left")
            ax.set_xlim(days[0], days[-1])
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--start", default="2026-11-01T00:00:00+08:00", help="aware RFC 3339 start time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rules", type=Path, default=REPO / "rules" / "default.yaml")
    parser.add_argument("--tick-hours", type=float, default=3.0, help="simulated clock tick interval (default 3)")
    parser.add_argument("--currency", default="CNY", help="currency of the aging panel (default CNY)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    args = parser.parse_args(argv)
    start = datetime.fromisoformat(args.start)
    if start.tzinfo is None:
        parser.error("--start needs a UTC offset, e.g. 2026-11-01T00:00:00+08:00")
    if args.accounts < 1 or args.days < 2 or args.tick_hours <= 0:
        parser.error("--accounts must be >= 1, --days >= 2 and --tick-hours > 0")

    simulation, samples = simulate_daily(args.accounts, args.days, start, args.seed, args.rules,
                                         timedelta(hours=args.tick_hours))
    title = (f"dunning-stream: {args.accounts} simulated accounts over {args.days} days from {start:%Y-%m-%d} "
             f"(seed {args.seed}, ticks every {args.tick_hours:g} h), sampled daily")
    render(samples, args.out, title, args.currency)
    last = samples[-1]
    rates = ", ".join(f"{c} {last.overdue_rate(c):.1%}" for c in sorted(last.accounts_open)
                      if last.overdue_rate(c) is not None)
    print(f"wrote {args.out}: {len(simulation.notices)} notices {dict(last.notices)}; "
          f"overdue rate on the last day: {rates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
