"""Large messages lose nothing: a rejected one too large to dead-letter whole is dead-lettered truncated, a valid
1 MB event in the same batch is applied, and a send the broker refuses stops the worker without committing."""
from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from livekit import eventually, get

from schemas.deadletter import DeadLetter
from streams.runtime.app import BATCH_FAILED

pytestmark = pytest.mark.broker


def invoice(account: str, event_id: str, padding: int, amount: object = "300.00") -> bytes:
    """An invoice.issued with `padding` random characters of extra field (kept and ignored, like an invoice's line
    items), which the worker's lz4 does not compress."""
    event = {"event_id": event_id, "type": "invoice.issued", "account_id": account,
             "occurred_at": "2026-11-05T10:00:00+08:00", "invoice_id": f"{account}-I1", "amount": amount,
             "currency": "CNY", "due_date": "2026-11-07", "lines": os.urandom(padding // 2 + 1).hex()[:padding]}
    return json.dumps(event).encode()


def letters(kcat, topic: str) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(line.split(b"\t", 1)[1]) for line in kcat.consume_bytes(topic)]


def landed(kcat, topic: str) -> list[tuple[int, int]]:
    """(partition, offset) of each message on the topic."""
    return [tuple(map(int, line.split(b"\t"))) for line in kcat.consume_bytes(topic, fmt="%p\t%o\n")]


def events_counted(port: int, type_: str) -> float:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(f'dunning_events_total{{type="{type_}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.live_namespace(commit_interval=0.1)
def test_a_large_bad_message_and_a_large_valid_one_in_one_batch(namespace, workers, kcat, probe):
    topics = namespace.topics
    bad = invoice("X2", "big-bad", 500_000, amount=300.5)  # a float amount: invalid_event
    good = invoice("X2", "big-good", 990_000)  # kcat's (librdkafka's) default limit is 1,000,000 bytes
    worker = workers("w1")
    kcat.produce(topics.invoices, [(b"X2", bad), (b"X2", good)])  # one partition, one batch
    probe.wait_caught_up(60, [worker])

    [letter] = letters(kcat, topics.dead_letter)
    [(partition, bad_offset), _] = landed(kcat, topics.invoices)
    assert letter.reason == "invalid_event" and letter.truncated
    assert (letter.origin.topic, letter.origin.partition, letter.origin.offset) == (topics.invoices, partition,
                                                                                   bad_offset)
    assert (letter.value_length, letter.value_sha256) == (len(bad), hashlib.sha256(bad).hexdigest())
    assert bad.startswith(base64.b64decode(letter.value_base64)) and letter.value_text
    status, body = get(f"http://127.0.0.1:{worker.web_port}/accounts/X2")
    assert status == 200, body
    assert [invoice["invoice_id"] for invoice in json.loads(body)["invoices"]] == ["X2-I1"]
    assert events_counted(worker.web_port, "invoice.issued") == 1
    assert worker.alive and worker.starts == 1 and "stopping" not in worker.log_text()


@pytest.mark.live_namespace(commit_interval=0.1)
def test_a_send_the_broker_refuses_stops_the_worker_and_a_restart_repeats_the_batch(namespace, workers, kcat,
                                                                                   probe):
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    topics = namespace.topics

    def limit_dead_letters(max_bytes: int) -> None:
        resource = ConfigResource(ConfigResourceType.TOPIC, topics.dead_letter,
                                  configs={"max.message.bytes": str(max_bytes)})
        probe.loop.run_until_complete(probe.admin.alter_configs([resource]))

    worker = workers("w1")  # creates the topics
    limit_dead_letters(1_000)  # a dead letter of the 5 KB message below is refused: MessageSizeTooLarge
    bad, good = invoice("X3", "refused", 5_000, amount=300.5), invoice("X3", "after", 0)
    kcat.produce(topics.invoices, [(b"X3", bad), (b"X3", good)])
    eventually(lambda: not worker.alive, 60, "the worker to stop", on_timeout=worker.tail)
    assert worker.proc.returncode == BATCH_FAILED
    [line] = [line for line in worker.log_text().splitlines() if "stopping" in line]
    assert "MessageSizeTooLarge" in line and "a restart repeats it" in line, line
    assert not probe.caught_up()  # nothing of the failed batch was committed
    assert letters(kcat, topics.dead_letter) == []

    limit_dead_letters(1_048_588)  # the broker's default again
    worker.start()
    probe.wait_caught_up(60, [worker])
    [letter] = letters(kcat, topics.dead_letter)
    assert base64.b64decode(letter.value_base64) == bad and not letter.truncated
    status, body = get(f"http://127.0.0.1:{worker.web_port}/accounts/X3")
    assert status == 200, body
    # the crash that stopped the first run, counted before its exit, is reported by the restarted worker
    status, body = get(f"http://127.0.0.1:{worker.web_port}/metrics")
    assert 'dunning_crashes_total{what="batch"} 1.0' in body.decode().splitlines()


@pytest.mark.live_namespace(commit_interval=0.1)
def test_an_id_of_900_kb_is_dead_lettered_and_the_worker_goes_on(namespace, workers, kcat, probe):
    """Ids were unbounded: a huge invoice_id went into the state, the audit line and every notice about the invoice,
    which the broker could refuse, stopping the worker at every restart. Now an id is at most 200 characters."""
    topics = namespace.topics
    huge = json.loads(invoice("X4", "huge-id", 0))
    huge["invoice_id"] = "I" * 900_000
    huge = json.dumps(huge).encode()
    worker = workers("w1")
    kcat.produce(topics.invoices, [(b"X4", huge), (b"X4", invoice("X4", "after", 0))])
    probe.wait_caught_up(60, [worker])

    [letter] = letters(kcat, topics.dead_letter)
    assert letter.reason == "invalid_event" and letter.truncated and letter.value_length == len(huge)
    assert letter.errors == ["invoice.issued.invoice_id: String should have at most 200 characters"]
    status, body = get(f"http://127.0.0.1:{worker.web_port}/accounts/X4")
    assert status == 200, body
    assert [invoice["invoice_id"] for invoice in json.loads(body)["invoices"]] == ["X4-I1"]
    assert worker.alive and worker.starts == 1 and "stopping" not in worker.log_text()
