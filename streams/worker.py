"""`dunning worker`: checks the ruleset and the topics, then runs the Faust worker until stopped."""
from __future__ import annotations

import asyncio
import gc
import sys

from aiokafka.errors import KafkaConnectionError, KafkaError

from rules.engine import Engine
from rules.loader import RulesetError, load_ruleset
from streams.settings import Settings
from streams.topics import TopicLayoutError, ensure_topics


# Account states are many and long-lived: Python's default threshold (700) has the collector rescan them all
# the time. Measured with bench/core.py (--gc-threshold): about a third more events per second.
WORKER_GC_THRESHOLD = (100_000, 20, 100)


def run_worker(settings: Settings) -> int:
    try:
        ruleset = load_ruleset(settings.rules)
    except RulesetError as exc:
        print(f"dunning worker: the ruleset is not valid, not starting:\n{exc}", file=sys.stderr)
        return 2
    try:
        created = asyncio.run(ensure_topics(settings))
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
    app = create_app(settings, Engine(ruleset))
    print(f"dunning worker: ruleset {ruleset.version} from {settings.rules}, {settings.partitions} partitions, "
          f"web on {settings.web_host}:{settings.web_port}", file=sys.stderr)
    worker = faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False)
    # Below info, Faust's terminal spinner sets the root logger to DEBUG to spin on every record: each debug call
    # in aiokafka's send path then builds a record (5% of a profiled worker at DUNNING_LOG_LEVEL=warning).
    worker.spinner = None
    worker.execute_from_commandline()
    return 0
