"""Messages the worker cannot use land in the dead-letter topic with the reason, the original bytes and where they
came from; the messages after them are processed as usual."""
from __future__ import annotations

import base64
import json

import pytest
from livekit import compare_notices, items_from_lines, simulate

from schemas.deadletter import DeadLetter
from streams.runtime.processor import partition_for

pytestmark = pytest.mark.broker

INVOICE = (b'{"event_id":"dl-ok-1","type":"invoice.issued","account_id":"DL1",'
           b'"occurred_at":"2026-11-05T10:00:00+08:00","invoice_id":"DL1-I1","amount":"300.00","currency":"CNY",'
           b'"due_date":"2026-11-07"}')
FAILED = (b'{"event_id":"dl-ok-2","type":"payment.failed","account_id":"DL1",'
          b'"occurred_at":"2026-11-05T11:00:00+08:00","payment_id":"DL1-P1","amount":"300.00","currency":"CNY",'
          b'"invoice_id":"DL1-I1","reason":"insufficient_funds"}')


@pytest.mark.live_namespace(commit_interval=0.1)
def test_bad_messages_are_dead_lettered_and_processing_goes_on(namespace, workers, kcat, probe):
    topics = namespace.topics
    home = partition_for("DL1", namespace.partitions)
    wrong = (home + 1) % namespace.partitions
    exploded = json.dumps({"event_id": "dl-3", "type": "invoice.exploded", "account_id": "DL1",
                           "occurred_at": "2026-11-05T10:00:00+08:00"}).encode()
    float_amount = INVOICE.replace(b'"amount":"300.00"', b'"amount":300.5').replace(b"dl-ok-1", b"dl-5")
    long_id = INVOICE.replace(b'"DL1-I1"', b'"' + b"I" * 5000 + b'"').replace(b"dl-ok-1", b"dl-9")  # over 200
    bad = [  # reason, topic, key, value, explicit partition (None: murmur2 of the key, like a Java producer)
        ("malformed_json", topics.invoices, b"DL1", b'{"event_id": "dl-1", "type": "invoice.issued", ', None),
        ("malformed_json", topics.payments, b"DL1", b"\xff\xfe not JSON, not even UTF-8", None),
        ("invalid_event", topics.invoices, b"DL1", exploded, None),
        ("invalid_event", topics.arrangements, b"DL1", b'["invoice.issued", "DL1"]', None),
        ("invalid_event", topics.invoices, b"DL1", float_amount, None),
        ("invalid_event", topics.invoices, b"DL1", long_id, None),
        ("misrouted", topics.invoices, b"DL1", INVOICE.replace(b"dl-ok-1", b"dl-6"), wrong),
        ("wrong_topic", topics.payments, b"DL1", INVOICE.replace(b"dl-ok-1", b"dl-7"), None),
        ("key_mismatch", topics.invoices, b"DL2", INVOICE.replace(b"dl-ok-1", b"dl-8"), None),
    ]
    worker = workers("w1")
    for _, topic, key, value, partition in bad:
        kcat.produce(topic, [(key, value)], partition=partition)
    # then valid events on the same topics and partitions as the bad ones
    kcat.produce(topics.invoices, [(b"DL1", INVOICE)])
    kcat.produce(topics.payments, [(b"DL1", FAILED)])
    probe.wait_caught_up(60, [worker])

    # where each message landed, read back from the input topics
    landed = {}
    for topic in {case[1] for case in bad}:
        for line in kcat.consume_bytes(topic, fmt="%p\t%o\t%k\t%s\n"):
            partition, offset, key, value = line.split(b"\t", 3)
            landed[(topic, value)] = (int(partition), int(offset), key)

    letters = []
    for line in kcat.consume_bytes(topics.dead_letter, fmt="%p\t%k\t%s\n"):
        partition, key, value = line.split(b"\t", 2)
        letters.append((int(partition), key, DeadLetter.model_validate_json(value)))
    assert len(letters) == len(bad), [letter.reason for _, _, letter in letters]
    by_value = {(letter.origin.topic, base64.b64decode(letter.value_base64)): (partition, key, letter)
                for partition, key, letter in letters}
    for reason, topic, key, value, explicit in bad:
        partition, key_sent, letter = by_value[(topic, value)]  # the original bytes, exactly
        at_partition, at_offset, stored_key = landed[(topic, value)]
        assert letter.reason == reason, (reason, letter)
        assert (letter.origin.topic, letter.origin.partition, letter.origin.offset) == (topic, at_partition,
                                                                                       at_offset)
        assert explicit is None or at_partition == explicit
        assert base64.b64decode(letter.key_base64) == key == stored_key == key_sent
        assert partition == at_partition  # the dead letter stays on the partition of its account
        assert letter.message
        assert letter.value_text == (value.decode() if value.isascii() else None)
        if reason in ("malformed_json", "invalid_event"):
            assert letter.errors, letter
    assert by_value[(topics.invoices, float_amount)][2].errors == [
        'invoice.issued.amount: 300.5 is not a decimal string such as "120.50"']
    assert by_value[(topics.invoices, long_id)][2].errors == [
        "invoice.issued.invoice_id: String should have at most 200 characters"]

    # the valid events after the bad ones were processed: the declined debit's reminder went out
    live = kcat.notices()
    expected = simulate(items_from_lines([INVOICE, FAILED]), None, None).notices
    assert [n.rule_id for n in expected] == ["debit-declined"]
    compare_notices(live, expected)
