"""`dunning`: the command line. Subcommands for rules, the simulator, schemas and (with the runtime) the worker."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from rules.loader import RulesetError
from rules.policy import Policy, PolicyEngine, Schedule, load_policy
from rules.simulator import Simulation
from schemas.events import InputEvent, describe_errors, parse_event
from streams.tools.args import aware_time, duration, read_jsonl
from streams.runtime.explain import account_report, render_report


def read_events(path: Path, errors: TextIO) -> tuple[list[InputEvent], int]:
    """Valid events in file order, and how many lines were rejected (each reported with its line number)."""
    return read_jsonl(path, parse_event, lambda exc: f"rejected: {'; '.join(describe_errors(exc))}", errors)


def load_or_report(paths: list[str], errors: TextIO) -> list[Policy] | None:
    """Rulesets or experiments (rules/policy.py); every problem of every file is reported."""
    policies, failed = [], False
    for path in paths:
        try:
            policies.append(load_policy(path))
        except RulesetError as exc:
            failed = True
            print(exc, file=errors)
    return None if failed else policies


def describe_policy(policy: Policy) -> str:
    if policy.experiment_id is None:
        ruleset = policy.variants[0].ruleset
        return f"version {ruleset.version}, {len(ruleset.rules)} rules"
    variants = "; ".join(f"{v.name} {v.share}%: version {v.ruleset.version}, {len(v.ruleset.rules)} rules"
                         for v in policy.variants)
    return f"experiment {policy.experiment_id}: {variants}"


def cmd_rules_check(args: argparse.Namespace) -> int:
    policies = load_or_report(args.files, sys.stderr)
    if policies is None:
        return 1
    for path, policy in zip(args.files, policies):
        print(f"{path}: ok ({describe_policy(policy)})")
    return 0


def cmd_rules_publish(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.runtime.rulesets import publish_policy
    from streams.runtime.settings import Settings

    policies = load_or_report([args.file], sys.stderr)
    if policies is None:
        return 1
    settings = Settings()
    try:
        record = asyncio.run(publish_policy(settings, policies[0], args.at))
    except (KafkaError, OSError) as exc:
        print(f"dunning rules publish: cannot write to {settings.topic.rulesets} at {settings.bootstrap_servers}: "
              f"{exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: published to {settings.topic.rulesets} as {record.digest} ({describe_policy(policies[0])});"
          f" every partition runs it from its first clock tick at or after {record.effective_after.isoformat()}")
    return 0


def timed_file(text: str) -> tuple[datetime, str]:
    """TIME=FILE, for simulate --rules-at."""
    when, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not TIME=FILE, e.g. 2026-11-20T00:00:00+08:00=new.yaml")
    return aware_time(when), path


def cmd_simulate(args: argparse.Namespace) -> int:
    switches = sorted(args.rules_at, key=lambda switch: switch[0])
    policies = load_or_report([args.rules, *(path for _, path in switches)], sys.stderr)
    if policies is None:
        return 1
    events, rejected = read_events(Path(args.events), sys.stderr)
    seed, *later = (PolicyEngine(policy) for policy in policies)
    schedule = Schedule(seed, [(when, engine) for (when, _), engine in zip(switches, later)])
    simulation = Simulation(seed, audit=[] if args.explain or args.audit else None, schedule=schedule)
    simulation.run(events, args.tick, args.until)
    if args.audit:
        with open(args.audit, "wb") as audit:
            audit.writelines(record.to_json() + b"\n" for record in simulation.audit)
    if args.explain:
        engine, trails = simulation.engine, simulation.trails()
        reports = [account_report(engine, simulation.accounts[a], simulation.platform, simulation.platform.clock,
                                  trail=trails.get(a, []))
                   for a in sorted(simulation.accounts)]
        sys.stdout.write("\n".join(render_report(report) for report in reports))
    else:
        for notice in simulation.sorted_notices():
            sys.stdout.write(notice.to_json().decode() + "\n")
    return 1 if rejected else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from streams.tools.reconcile import reconcile

    policies = load_or_report([args.rules], sys.stderr)
    if policies is None:
        return 1
    statements, rejected = read_events(Path(args.statements), sys.stderr)
    others = [event for event in statements if event.type != "account.statement"]
    for event in others:
        print(f"{args.statements}: {event.event_id} ({event.type}) is not an account.statement; give it in --events",
              file=sys.stderr)
    events, more = read_events(Path(args.events), sys.stderr) if args.events else ([], 0)
    reconcile(PolicyEngine(policies[0]), events, [e for e in statements if e.type == "account.statement"],
              sys.stdout, args.json)
    return 1 if rejected or more or others else 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import export
    from streams.tools import asyncapi

    if args.check:
        stale = [f"schemas/json/{name}" for name in export.stale()]
        if asyncapi.stale():
            stale.append("schemas/asyncapi.yaml")
        for name in stale:
            print(f"{name} is stale; run `dunning schemas export`", file=sys.stderr)
        return 1 if stale else 0
    for name in export.write():
        print(f"schemas/json/{name}")
    asyncapi.write()
    print("schemas/asyncapi.yaml")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.runtime.settings import Settings
    from streams.runtime.worker import run_worker

    return run_worker(Settings())


def cmd_publish(args: argparse.Namespace) -> int:
    import asyncio

    from streams.tools.live import publish
    from streams.runtime.settings import Settings

    events, rejected = read_events(Path(args.events), sys.stderr)
    asyncio.run(publish(Settings(), events, args.tick, args.until, settle=not args.no_settle))
    return 1 if rejected else 0


def cmd_tail(args: argparse.Namespace) -> int:
    import asyncio

    from streams.tools.live import tail
    from streams.runtime.settings import Settings

    asyncio.run(tail(Settings(), args.from_beginning, args.limit, args.idle))
    return 0


def cmd_audit_check(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from streams.tools.audit_check import check_broker
    from streams.runtime.settings import Settings

    report = asyncio.run(check_broker(Settings(), simulate=not args.no_simulator))
    print(json.dumps(report.summary()) if args.json else report.render())
    return 0 if report.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from rules.report import report
    from streams.tools.report import as_json, draw, read_audit_file, read_audit_topic, render

    if args.audit:
        records, rejected = read_audit_file(Path(args.audit), sys.stderr)
    else:
        from aiokafka.errors import KafkaError

        from streams.runtime.settings import Settings

        settings = Settings()
        try:
            records, rejected = asyncio.run(read_audit_topic(settings, sys.stderr))
        except (KafkaError, OSError) as exc:
            print(f"dunning report: cannot read {settings.topic.audit} at {settings.bootstrap_servers}: {exc}",
                  file=sys.stderr)
            return 2
    if not records:
        print("dunning report: no audit lines to report on", file=sys.stderr)
        return 1
    result = report(records, args.as_of, args.baseline)
    if args.baseline and args.baseline not in result.variants:
        print(f"dunning report: no variant {args.baseline!r}; the audit has {', '.join(result.variants)}",
              file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(as_json(result), indent=2) + "\n" if args.json else render(result))
    if args.png:
        draw(result, Path(args.png))
    return 1 if rejected else 0


def cmd_backtest(args: argparse.Namespace) -> int:
    import asyncio

    from streams.tools import backtest

    if len(args.rules) != 2:
        print("dunning backtest: give --rules twice: the policy in force, then the new one", file=sys.stderr)
        return 2
    if args.to <= args.start:
        print("dunning backtest: --to must be later than --from", file=sys.stderr)
        return 2
    policies = load_or_report(args.rules, sys.stderr)
    if policies is None:
        return 1
    rejected = 0
    if args.events:
        events, rejected = read_events(Path(args.events), sys.stderr)
    else:
        from aiokafka.errors import KafkaError

        from streams.runtime.settings import Settings

        settings = Settings()
        try:
            events = asyncio.run(backtest.read_input_topics(settings))
        except (KafkaError, OSError) as exc:
            print(f"dunning backtest: cannot read the input topics at {settings.bootstrap_servers}: {exc}",
                  file=sys.stderr)
            return 2
    names = [Path(path).stem for path in args.rules]
    if names[0] == names[1]:
        names = list(args.rules)
    events = backtest.in_range(events, args.start, args.to)
    result = backtest.run(tuple(zip(names, policies)), events, args.start, args.to, args.tick)
    sys.stdout.write(backtest.explain(result, args.explain) if args.explain else backtest.render(result, args.top))
    return 1 if rejected else 0


def cmd_explain(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    from streams.runtime.settings import Settings

    settings = Settings()
    base = args.url or settings.local_url
    request = urllib.request.Request(f"{base}/accounts/{urllib.parse.quote(args.account, safe='')}")
    if settings.web_token:
        request.add_header("Authorization", f"Bearer {settings.web_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            report = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"dunning explain: {base} answered {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dunning explain: cannot reach a worker at {base}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if args.json else render_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dunning", description="Rules-driven dunning for overdue receivables.")
    commands = parser.add_subparsers(dest="command", required=True)

    rules = commands.add_parser("rules", help="work with ruleset files").add_subparsers(dest="rules_command",
                                                                                         required=True)
    check = rules.add_parser("check", help="validate ruleset files; exit 1 if any is invalid")
    check.add_argument("files", nargs="+")
    check.set_defaults(handler=cmd_rules_check)
    rules_publish = rules.add_parser("publish", help="validate a ruleset (or experiment) and publish it to the "
                                                     "rulesets topic; running workers switch to it at a tick")
    rules_publish.add_argument("file")
    rules_publish.add_argument("--at", type=aware_time, help="in force from the first clock tick at or after this "
                                                             "logical time (default: now)")
    rules_publish.set_defaults(handler=cmd_rules_publish)

    simulate = commands.add_parser("simulate", help="run events through the engine offline; print notices")
    simulate.add_argument("--rules", required=True, help="ruleset YAML file (or an experiment)")
    simulate.add_argument("--rules-at", type=timed_file, action="append", default=[], metavar="TIME=FILE",
                          help="switch to this ruleset at the first tick at or after TIME, as a worker does when "
                               "it is published with --at TIME (repeatable)")
    simulate.add_argument("--events", required=True, help="events, one JSON object per line")
    simulate.add_argument("--until", type=aware_time, help="keep ticking up to this time (RFC 3339)")
    simulate.add_argument("--tick", type=duration, default=timedelta(hours=1), help="tick interval (default 1h)")
    simulate.add_argument("--explain", action="store_true", help="print a readable timeline per account instead")
    simulate.add_argument("--audit", help="also write every audit line, as the worker sends them to dunning.audit, "
                                          "to this JSONL file")
    simulate.set_defaults(handler=cmd_simulate)

    reconcile = commands.add_parser("reconcile", help="billing's statements against what the engine holds: every "
                                    "difference, as decision.reconciled records it")
    reconcile.add_argument("--statements", required=True, help="account.statement events, one JSON object per line")
    reconcile.add_argument("--events", help="the account events the engine applied, one JSON object per line")
    reconcile.add_argument("--rules", default="rules/default.yaml", help="ruleset (its time zone and currency; "
                           "default rules/default.yaml)")
    reconcile.add_argument("--json", action="store_true", help="one JSON object per statement instead")
    reconcile.set_defaults(handler=cmd_reconcile)

    schemas = commands.add_parser("schemas", help="JSON Schema files of the event contracts, and the AsyncAPI "
                                                  "document of every topic")
    schemas.add_argument("action", choices=["export"], help="write schemas/json/*.schema.json and "
                                                             "schemas/asyncapi.yaml")
    schemas.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    schemas.set_defaults(handler=cmd_schemas)
    worker = commands.add_parser("worker", help="run a stream worker (configured by DUNNING_* variables)")
    worker.set_defaults(handler=cmd_worker)

    publish = commands.add_parser("publish", help="send events to the topics of their types")
    publish.add_argument("--events", required=True, help="events, one JSON object per line")
    publish.add_argument("--tick", type=duration, help="insert clock ticks at this interval, as simulate does")
    publish.add_argument("--until", type=aware_time, help="keep ticking up to this time")
    publish.add_argument("--no-settle", action="store_true",
                         help="do not wait for the worker to consume the events before each tick")
    publish.set_defaults(handler=cmd_publish)

    report = commands.add_parser("report", help="what each experiment variant and each rule achieves: contacts, "
                                                "cures within 7 and 30 days, roll rates, and the difference in "
                                                "cure rate between variants")
    report.add_argument("--audit", help="a `dunning simulate --audit` file (default: read the audit topic)")
    report.add_argument("--as-of", type=aware_time, help="judge as of this time (default: the latest audit line)")
    report.add_argument("--baseline", help="the variant the others are compared with (default: champion)")
    report.add_argument("--json", action="store_true", help="print the figures as JSON")
    report.add_argument("--png", help="also draw the report into this PNG file")
    report.set_defaults(handler=cmd_report)

    backtest = commands.add_parser("backtest", help="run the policy in force and a new one over the same events "
                                                    "and compare what each would send")
    backtest.add_argument("--from", dest="start", type=aware_time, required=True,
                          help="events that occurred from this time (RFC 3339)")
    backtest.add_argument("--to", type=aware_time, required=True, help="up to this time (ticks run up to it)")
    backtest.add_argument("--rules", action="append", default=[], metavar="FILE",
                          help="twice: the policy in force, then the new one (rulesets or experiments)")
    backtest.add_argument("--events", help="events, one JSON object per line (default: read the input topics)")
    backtest.add_argument("--tick", type=duration, default=timedelta(hours=1), help="tick interval (default 1h)")
    backtest.add_argument("--top", type=int, default=10, help="how many of the most differing accounts to list")
    backtest.add_argument("--explain", metavar="ACCOUNT", help="one account's notices under both policies")
    backtest.set_defaults(handler=cmd_backtest)

    explain = commands.add_parser("explain", help="why an account got its notices (asks a running worker)")
    explain.add_argument("account")
    explain.add_argument("--url", help="a worker's web address (default: DUNNING_WEB_HOST:DUNNING_WEB_PORT)")
    explain.add_argument("--json", action="store_true", help="print the worker's JSON report")
    explain.set_defaults(handler=cmd_explain)

    audit = commands.add_parser(
        "audit-check", help="prove every input message was applied or dead-lettered, no notice twin differs, and "
                            "the notices are the simulator's; exit 1 naming the first violations")
    audit.add_argument("--no-simulator", action="store_true",
                       help="skip the simulator comparison (when the events were not published in time order)")
    audit.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    audit.set_defaults(handler=cmd_audit_check)

    tail = commands.add_parser("tail", help="print notices as readable lines as they arrive")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--limit", type=int, help="stop after this many notices")
    tail.add_argument("--idle", type=float, help="stop after this many seconds without a notice")
    tail.set_defaults(handler=cmd_tail)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        for error in exc.errors():  # one line each, named as the environment variable that set it
            name = "__".join(str(part) for part in error["loc"]).upper()
            where = "" if not name else f"{name}: " if name.startswith("KAFKA_") else f"DUNNING_{name}: "
            print(f"dunning: the settings are not valid: {where}{error['msg'].removeprefix('Value error, ')}",
                  file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
