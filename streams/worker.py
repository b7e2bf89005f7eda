"""`dunning worker`: checks the ruleset and the topics, then runs the Faust worker until stopped."""
from __future__ import annotations

import asyncio
import gc
import sys

from aiokafka.errors import KafkaConnectionError, KafkaError

from rules.loader import RulesetError
from rules.policy import PolicyEngine, load_policy
from streams.rulesets import ensure_rulesets_topic
from streams.settings import Settings
from streams.topics import TopicLayoutError, ensure_topics


# Account states are many and long-lived: Python's default threshold (700) has the collector rescan them all
# the time. Measured with bench/core.py (--gc-threshold): about a third more events per second.
WORKER_GC_THRESHOLD = (100_000, 20, 100)


def run_worker(settings: Settings) -> int:
    try:
        policy = load_policy(settings.rules)
    except RulesetError as exc:
        print(f"dunning worker: the ruleset is not valid, not starting:\n{exc}", file=sys.stderr)
        return 2
    try:
        created = asyncio.run(_ensure_all_topics(settings))
    except TopicLayoutError as exc:
        print(f"dunning worker: {exc}", file=sys.stderr)
        return 2
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        print(f"dunning worker: cannot reach Kafka at {settings.bootstrap_servers}: {exc}", file=sys.stderr)
        return 2
    if created:
        print(f"dunning worker: created topics {', '.join(created)}", file=sys.stderr)
    import faust  # after the checks: importing Faust is slow and needs nothing above

    from streams.app import create_app

    gc.set_threshold(*WORKER_GC_THRESHOLD)
    app = create_app(settings, PolicyEngine(policy))
    print(f"dunning worker: ruleset {policy.version} from {settings.rules} (until one published on "
          f"{settings.topic.rulesets} is in force), {settings.partitions} partitions, "
          f"web on {settings.web_host}:{settings.web_port}", file=sys.stderr)
    worker = faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False)
    # Below info, Faust's terminal spinner sets the root logger to DEBUG to spin on every record: each debug call
    # in aiokafka's send path then builds a record (5% of a profiled worker at DUNNING_LOG_LEVEL=warning).
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


async def _ensure_all_topics(settings: Settings) -> list[str]:
    created = await ensure_topics(settings)
    if await ensure_rulesets_topic(settings):
        created.append(settings.topic.rulesets)
    return created
