"""The targets of issue #8, judged on one result of bench/live.py, its printed summary, and its chart."""
from __future__ import annotations

from operator import ge, gt, le, lt
from pathlib import Path

KIB = 1024
_SIGN = {ge: ">=", gt: ">", le: "<=", lt: "<"}


def targets(result: dict) -> list[dict]:
    """Each target: what it says, the figure measured, the bound, and whether it is met."""
    rate = {name: contender["events_per_s"] for name, contender in result["throughput"].items()}
    worker = rate["d1_worker"]
    checks = [
        ("worker >= 0.6x the engine in a plain aiokafka loop", worker / rate["b_engine_loop"], ge, 0.6),
        ("worker >= 3x the empty Faust agent", worker / rate["c0_empty_faust"], ge, 3),
        ("2 worker processes >= 1.6x 1 (ratio)", rate["d2_workers"] / worker, ge, 1.6),
        ("changelog bytes per input event / the event's own bytes", result["changelog"]["ratio"], le, 3),
    ]
    if "state" not in result:  # --throughput: (a)-(d) and (g) only
        return _judged(checks)
    sweep, state = result["clock_sweep"][-1], result["state"]
    checks += [
        (f"state bytes per account, mean ({state['accounts']:,} accounts, {state['days']} days)",
         state["mean_bytes"], lt, KIB),
        (f"state bytes per account, p99 ({state['accounts']:,} accounts, {state['days']} days)",
         state["p99_bytes"], lt, 8 * KIB),
        (f"s per clock tick finding {sweep['due_per_tick']:,} of {sweep['accounts']:,} accounts due",
         sweep["tick_s"], lt, 1),
        (f"s to restore {sweep['accounts']:,} accounts", sweep["restore"]["seconds"], lt, 30),
    ]
    for run in result.get("failover", []):
        if run["standby_replicas"]:
            checks.append((f"s from the rebalance after a SIGKILL to the first notice on the dead worker's partitions, "
                           f"{run['accounts']:,} accounts, standbys", run["first_notice_after_rebalance_s"], le, 5))
    return _judged(checks)


def million_targets(result: dict) -> list[dict]:
    """Issue 19's targets for the 1M-account sweep (--million)."""
    sweep = result["clock_sweep"][-1]
    peak = result["peak_rss_mb"][f"sweep-{sweep['accounts']}"]
    return _judged([
        (f"s to restore {sweep['accounts']:,} accounts from an empty state directory", sweep["restore"]["seconds"],
         lt, 60),
        (f"s per steady clock tick finding {sweep['due_per_tick']:,} of {sweep['accounts']:,} accounts due",
         sweep["tick_s"], lt, 1),
        (f"peak RSS, MiB, holding {sweep['accounts']:,} accounts", peak, lt, 1024),
    ])


def _judged(checks: list[tuple]) -> list[dict]:
    return [{"target": name, "value": None if value is None else round(value, 3), "bound": f"{_SIGN[test]} {limit:g}",
             "met": value is not None and test(value, limit)}  # None: no notice came while the harness waited
            for name, value, test, limit in checks]


def summary(result: dict) -> str:
    throughput = result["throughput"]
    lines = [f"make bench ({result['mode']})  {result['utc']}  commit {result['commit']}  {result['cpu']}, "
             f"{result['cores']} cores, load {result['load'][0]:.2f} -> {result['load'][1]:.2f}",
             f"  workload: {result['workload']['input_messages']:,} input messages, "
             f"{result['workload']['accounts']:,} accounts, {result['workload']['days']} days, "
             f"{result['workload']['partitions']} partitions", "", "  throughput, events/s (same run):"]
    for name, contender in throughput.items():
        extra = (f"  ({contender['counted']:,} counted after {contender['startup_excluded_s']:.1f} s of start-up; "
                 f"cores busy: {_cores(contender['cpu_cores'])})"
                 if "counted" in contender else "")
        lines.append(f"    {name:<16} {contender['events_per_s']:>9,}{extra}")
    rate = {name: contender["events_per_s"] for name, contender in throughput.items()}
    lines.append(f"    worker / empty Faust agent (what Faust's stream alone allows): "
                 f"{rate['d1_worker'] / rate['c0_empty_faust']:.2f}")
    changelog = result["changelog"]
    lines += ["", f"  changelog: {changelog['records']:,} records, {changelog['bytes'] / 1e6:,.1f} MB, "
                  f"{changelog['bytes_per_event']:,} bytes per input event; input events {changelog['input_mean_bytes']}"
                  f" bytes each (ratio {changelog['ratio']})",
              f"  peak RSS, MB: {result['peak_rss_mb']}"]
    if "state" in result:
        lines.append(f"  state after {result['state']['days']} days: mean {result['state']['mean_bytes']:,} bytes, "
              f"p99 {result['state']['p99_bytes']:,}, max {result['state']['max_bytes']:,}")
    lines += _sweep_lines(result)
    return "\n".join(lines)


def million_summary(result: dict) -> str:
    lines = [f"make bench (million)  {result['utc']}  commit {result['commit']}  {result['cpu']}, "
             f"{result['cores']} cores, load {result['load'][0]:.2f} -> {result['load'][1]:.2f}",
             f"  peak RSS, MiB: {result['peak_rss_mb']}; RSS per account held: {result['rss_kib_per_account']} KiB"]
    return "\n".join(lines + _sweep_lines(result))


def _sweep_lines(result: dict) -> list[str]:
    lines = []
    for sweep in result.get("clock_sweep", []):
        lines.append(f"  clock sweep, {sweep['accounts']:,} accounts, {sweep['due_per_tick']:,} due per tick: "
                     f"{sweep['tick_s']} s per tick (first tick after start {sweep['first_tick_s']} s), "
                     f"restore {sweep['restore']['seconds']} s ({sweep['restore']['bytes'] / 1e6:,.0f} MB; cores busy "
                     f"from start to ready: {_cores(sweep['restore']['cpu_cores_to_ready'])})")
    for run in result.get("failover", []):
        lines.append(f"  failover, {run['accounts']:,} accounts, {run['standby_replicas']} standby replicas: after the "
                     f"SIGKILL, rebalanced {run['rebalanced_s']} s, streams resumed {run['resumed_s']} s, first notice "
                     f"on the dead worker's partitions {run['first_notice_s']} s (every one of them "
                     f"{run['all_partitions_noticed_s']} s); {run['changelog_records_read']} changelog records read to take over")
    lines += ["", "  targets:"]
    lines += [f"    {'met    ' if t['met'] else 'NOT met'}  {t['target']}: {'none came' if t['value'] is None else format(t['value'], ',')} ({t['bound']})"
              for t in result["targets"]]
    lines.append(f"\n  {result['seconds']:.0f} s in all")
    return lines


def _cores(busy: dict[str, float]) -> str:
    return ", ".join(f"{who} {cores}" for who, cores in busy.items())


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    rate = {name: contender["events_per_s"] for name, contender in result["throughput"].items()}
    ax = axes[0][0]
    _bars(ax, "input events/s, first event to lag 0 (log scale)", rate, None, None)
    ax.set_yscale("log")
    ax.axhline(5 * rate["c_naive_faust"], color="r", ls="--", label="5x naive Faust")
    ax.axhline(0.5 * rate["b_engine_loop"], color="r", ls=":", label="0.5x engine loop")
    ax.legend(fontsize=8)
    sweeps = result["clock_sweep"]
    _bars(axes[0][1], "seconds per clock tick, 1% due",
          {f"{_count(s['accounts'])} {which}": s[key] for s in sweeps
           for which, key in (("steady", "tick_s"), ("first", "first_tick_s"))}, 1, "target 1 s")
    changelog = result["changelog"]
    _bars(axes[0][2], "bytes per input event",
          {"input event": changelog["input_mean_bytes"], "changelog": changelog["bytes_per_event"]},
          3 * changelog["input_mean_bytes"], "target 3x input")
    state = result["state"]
    _bars(axes[1][0], f"state bytes per account ({state['accounts']:,} acc., {state['days']} days)",
          {"mean": state["mean_bytes"], "p99": state["p99_bytes"]}, None, None)
    axes[1][0].axhline(KIB, color="r", ls="--", label="mean < 1 KiB")
    axes[1][0].axhline(8 * KIB, color="r", ls=":", label="p99 < 8 KiB")
    axes[1][0].legend(fontsize=8)
    _bars(axes[1][1], "restore seconds, by accounts", {_count(s["accounts"]): s["restore"]["seconds"] for s in sweeps},
          30, "target 30 s")
    _bars(axes[1][2], "worker peak RSS, MB", {name: max(value) if isinstance(value, list) else value
                                              for name, value in result["peak_rss_mb"].items()}, None, None)
    met = sum(t["met"] for t in result["targets"])
    figure.suptitle(f"make bench ({result['mode']}), {result['utc'][:16]} UTC, commit {result['commit']}: "
                    f"{met} of {len(result['targets'])} targets met")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _count(accounts: int) -> str:
    return f"{accounts / 1000:g}k" if accounts >= 1000 else str(accounts)


def _bars(ax, title: str, values: dict, limit: float | None, label: str | None) -> None:
    ax.bar(list(values), list(values.values()), color="#36c")
    for x, value in enumerate(values.values()):
        ax.annotate(f"{value:,.2f}" if value < 10 else f"{value:,.0f}", (x, value), ha="center", va="bottom",
                    fontsize=8)
    if limit is not None:
        ax.axhline(limit, color="r", ls="--", label=label)
        ax.legend(fontsize=8)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=20)
