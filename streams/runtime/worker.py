"""`dunning worker`: checks the ruleset and the topics, then runs the Faust worker until stopped."""
from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys

from aiokafka.errors import KafkaConnectionError, KafkaError

from rules.loader import RulesetError
from rules.policy import PolicyEngine, load_policy
from streams.runtime.rulesets import ensure_rulesets_topic
from streams.runtime.settings import Settings
from streams.runtime.topics import TopicLayoutError, ensure_topics


# Account states are many and long-lived: Python's default threshold (700) has the collector rescan them all
# the time. Measured with bench/core.py (--gc-threshold): about a third more events per second.
WORKER_GC_THRESHOLD = (100_000, 20, 100)


def run_worker(settings: Settings) -> int:
    try:
        policy = load_policy(settings.rules)
    except RulesetError as exc:
        print(f"dunning worker: the ruleset is not valid, not starting:\n{exc}", file=sys.stderr)
        return 2
    connecting = ConnectionErrors()
    try:
        with connecting:
            created = asyncio.run(_ensure_all_topics(settings))
    except TopicLayoutError as exc:
        print(f"dunning worker: {exc}", file=sys.stderr)
        return 2
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        print(f"dunning worker: {connecting.explain(settings, exc)}", file=sys.stderr)
        return 2
    if created:
        print(f"dunning worker: created topics {', '.join(created)}", file=sys.stderr)
    import faust  # after the checks: importing Faust is slow and needs nothing above

    from streams.runtime.app import create_app

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


class ConnectionErrors(logging.Handler):
    """Keeps why aiokafka could not connect (it logs the cause, credentials refused or a certificate not trusted,
    and raises only "Unable to bootstrap"), and keeps its log lines off the terminal while the worker checks its
    topics, so that a refusal is one line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.cause: str | None = None
        self._logger = logging.getLogger("aiokafka")

    def emit(self, record: logging.LogRecord) -> None:
        self.cause = record.getMessage()

    def __enter__(self) -> "ConnectionErrors":
        self._logger.addHandler(self)
        self._propagate, self._logger.propagate = self._logger.propagate, False
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate

    def explain(self, settings: Settings, exc: BaseException) -> str:
        cause = " ".join((self.cause or f"{type(exc).__name__}: {exc}").split())
        cause = re.sub(r'^Unable connect to "[^"]*": ', "", cause)  # the servers are named already
        servers, user = settings.bootstrap_servers, settings.sasl_username
        if "AuthenticationFailed" in cause:  # aiokafka's SaslAuthenticationFailed
            return (f"Kafka at {servers} refused the credentials of user {user!r} ({settings.sasl_mechanism} over "
                    f"{settings.security_protocol}; DUNNING_SASL_USERNAME, DUNNING_SASL_PASSWORD): {cause}")
        if "CERTIFICATE_VERIFY_FAILED" in cause:
            return (f"Kafka at {servers} presented a certificate that is not trusted (DUNNING_SSL_CAFILE names the CA "
                    f"to trust): {cause}")
        return f"cannot reach Kafka at {servers} ({settings.security_protocol}): {cause}"


async def _ensure_all_topics(settings: Settings) -> list[str]:
    created = await ensure_topics(settings)
    if await ensure_rulesets_topic(settings):
        created.append(settings.topic.rulesets)
    return created
