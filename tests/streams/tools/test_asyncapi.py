"""schemas/asyncapi.yaml: valid against the official AsyncAPI 3.0.0 JSON Schema, current, and listing every topic
the worker reads or writes with its messages' exported JSON Schemas.

The AsyncAPI schema is the one @asyncapi/specs 6.11.1 (npm, Apache-2.0) ships as schemas/3.0.0.json, committed in
tests/asyncapi-spec with its LICENSE and NOTICE: it bundles every definition it refers to (JSON Schema draft-07
included), so validating needs no network."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from schemas.events import EVENT_TYPES
from schemas.export import SCHEMA_DIR
from schemas.notices import NOTICE_KINDS
from streams.tools import asyncapi
from streams.tools.cli import main
from streams.runtime.settings import TopicNames

SPEC = Path(__file__).resolve().parents[2] / "asyncapi-spec" / "asyncapi-3.0.0.json"


def committed() -> dict:
    return yaml.safe_load(asyncapi.ASYNCAPI_PATH.read_text())


def spec_errors(document: dict) -> list[str]:
    schema = json.loads(SPEC.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_the_document_is_valid_asyncapi_3():
    assert committed()["asyncapi"] == "3.0.0"
    assert spec_errors(committed()) == []


@pytest.mark.parametrize("breakage", ["action", "address", "extra"])
def test_the_validator_refuses_a_broken_document(breakage):
    document = copy.deepcopy(committed())
    if breakage == "action":
        document["operations"]["send_audit"]["action"] = "publish"  # AsyncAPI 2's word, not 3's
    elif breakage == "address":
        document["channels"]["audit"]["address"] = 42
    else:
        document["channels"]["audit"]["topic"] = "dunning.audit"  # channels have no such field
    assert spec_errors(document) != []


def test_the_committed_document_is_current_and_the_check_says_when_it_is_not(tmp_path, capsys):
    assert not asyncapi.stale()
    copy_path = tmp_path / "asyncapi.yaml"
    copy_path.write_text(asyncapi.rendered().replace("dunning.audit", "dunning.audit-old"))
    assert asyncapi.stale(copy_path)
    assert main(["schemas", "export", "--check"]) == 0


def test_every_topic_the_worker_reads_or_writes_is_a_channel_with_its_direction():
    topics = TopicNames()
    document = committed()
    channels = {channel["address"]: name for name, channel in document["channels"].items()}
    assert set(channels) == set(topics.model_dump().values())  # rulesets and any topic added to TopicNames too
    actions = {operation["channel"]["$ref"].rsplit("/", 1)[1]: operation["action"]
               for operation in document["operations"].values()}
    for address in topics.inputs:
        assert actions[channels[address]] == "receive", address
    for address in topics.outputs:
        assert actions[channels[address]] == "send", address


def test_each_event_and_notice_is_on_the_topic_the_worker_takes_it_from_or_sends_it_to():
    topics, document = TopicNames(), committed()
    on = {channel["address"]: set(channel["messages"]) for channel in document["channels"].values()}
    for event_type in EVENT_TYPES:
        assert event_type in on[topics.for_event_type(event_type)], event_type
    for kind in NOTICE_KINDS:
        assert on[topics.for_notice_kind(kind)] == {"notice"}, kind
    assert on[topics.dead_letter] == {"dead-letter"} and on[topics.audit] == {"audit"}


def test_every_payload_is_an_exported_json_schema_and_every_key_is_described():
    document = committed()
    for name, message in document["components"]["messages"].items():
        reference = message["payload"]["schema"]["$ref"]
        path = asyncapi.ASYNCAPI_PATH.parent / reference
        assert path.parent == SCHEMA_DIR and path.exists(), reference
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert message["payload"]["schemaFormat"].endswith("2020-12") and "2020-12" in schema["$schema"]
        key = message["bindings"]["kafka"]["key"]
        assert key["type"] == "string" and key["description"], name


def test_a_topic_added_to_the_settings_must_be_described():
    class MoreTopics(TopicNames):
        refunds: str = "billing.refunds"

    with pytest.raises(ValueError, match="refunds"):
        asyncapi.document(MoreTopics())


def test_the_notice_topics_are_those_of_every_notice_kind():
    topics = TopicNames()
    assert set(topics.notices) == {topics.for_notice_kind(kind) for kind in NOTICE_KINDS}
    assert len(topics.notices) == len(set(topics.notices)) and set(topics.notices) <= set(topics.outputs)
