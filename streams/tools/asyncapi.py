"""The AsyncAPI 3.0 document of every topic the worker reads or writes: schemas/asyncapi.yaml.

Generated from TopicNames (a topic added there must be described here, or `dunning schemas export` fails naming
it), the event types' topics (TopicNames.for_event_type) and the notice kinds' (TopicNames.for_notice_kind).
Each message's payload is a $ref to its exported JSON Schema in schemas/json/ (JSON Schema 2020-12,
as `dunning schemas export` writes them), so the document and the schemas cannot drift apart and a billing team in
Java or Go generates its client from both. Operations are the worker's own: it receives what billing, collections
and operators publish, and sends what notification services, collection teams and finance consume.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from schemas.events import EVENT_TYPES
from schemas.export import SCHEMA_DIR
from schemas.notices import NOTICE_KINDS
from streams.runtime.settings import Settings, TopicNames

ASYNCAPI_PATH = SCHEMA_DIR.parent / "asyncapi.yaml"
_BINDING = "0.5.0"  # Kafka bindings version
_ACCOUNT_KEY = {"type": "string", "description": "the account_id (the clock's and outages' key is *); "
                "partitioned with the Java-compatible murmur2 partitioner"}

# Per TopicNames field: whether the worker reads or writes it, who publishes it, what it carries, and (for topics
# not keyed by account, or not carrying events or notices) its key and message.
TOPICS: dict[str, dict[str, str]] = {
    "invoices": {
        "worker": "reads", "publisher": "billing",
        "about": "Invoices issued, adjusted (a credit note lowers the total) and cancelled."},
    "payments": {
        "worker": "reads", "publisher": "billing (the payment gateway)",
        "about": "Payments received and auto-debits that failed."},
    "arrangements": {
        "worker": "reads", "publisher": "collections (collectors) and billing",
        "about": "Arrangements agreed and cancelled (extension, promise to pay, installments, settlement), disputes "
                 "opened and resolved, debt written off, and contacts recorded by collectors and agencies."},
    "profiles": {
        "worker": "reads", "publisher": "the customer profile service (CRM), operations and billing",
        "about": "Risk tier, time zone and contact channels of an account; flags and holds on it (account.flagged "
                 "and account.unflagged: breathing space, hardship, vulnerable, deceased, bankruptcy, fraud, "
                 "do_not_dun); and billing's statements of its open invoices and credit (account.statement), the "
                 "book of record the engine reconciles with."},
    "clock": {
        "worker": "reads", "publisher": "the worker's leader (clock.tick) and operations (platform.outage)",
        "about": "The engine's only source of time, and platform outages. Every partition gets each tick and "
                 "outage, keyed *."},
    "reminders": {
        "worker": "writes", "publisher": "the worker",
        "about": "Reminders for the notification service (kind reminder)."},
    "urgent_notices": {
        "worker": "writes", "publisher": "the worker",
        "about": "Urgent notices for the notification service (kind urgent_notice)."},
    "handoffs": {
        "worker": "writes", "publisher": "the worker",
        "about": "Handoffs opened and recalled, for collectors, agencies and legal (kind handoff)."},
    "offers": {
        "worker": "writes", "publisher": "the worker",
        "about": "Settlement offers for the notification service (kind offer): amounts per currency, the last day "
                 "to pay, the invoices covered."},
    "decisions": {
        "worker": "writes", "publisher": "the worker",
        "about": "Decisions about the debt for billing and finance: settlements paid (kind settlement, with the "
                 "discount written off), write-offs (kind write_off), recoveries of written-off debt (kind "
                 "recovery), and restrictions for billing to enforce and undo (kind restriction: freeze_credit, "
                 "block_purchases, suspend_service, ...; state applied or lifted)."},
    "dead_letter": {
        "worker": "writes", "publisher": "the worker", "message": "dead-letter",
        "key": "the original message's key (its start, when truncated)",
        "about": "Messages the worker could not use, with their original bytes, origin and reason."},
    "audit": {
        "worker": "writes", "publisher": "the worker", "message": "audit",
        "about": "The audit trail: every event applied, notice sent and decision taken, one record per line, "
                 "append-only."},
    "rulesets": {
        "worker": "reads", "publisher": "operators (dunning rules publish)", "message": "ruleset",
        "key": "the policy's digest",
        "about": "Published policies (rulesets and experiments); compacted, one partition. Workers switch at a "
                 "clock tick at or after a record's effective time."},
    "receipts": {
        "worker": "reads", "publisher": "the notification services (SMS gateway status callbacks, e-mail bounces)",
        "about": "Delivery receipts: a notice delivered, or failed (permanently: the channel is dead for the "
                 "account; temporarily: tried again)."},
}


def _messages(topics: TopicNames, field: str) -> list[str]:
    """The messages (exported schema names) on the topic TopicNames calls `field`."""
    address = getattr(topics, field)
    events = [t for t in EVENT_TYPES if topics.for_event_type(t) == address]
    if events:
        return events
    if any(topics.for_notice_kind(kind) == address for kind in NOTICE_KINDS):
        return ["notice"]
    return [TOPICS[field]["message"]]


def document(topics: TopicNames | None = None) -> dict[str, Any]:
    topics = topics or TopicNames()
    fields = type(topics).model_fields
    undescribed = sorted(set(fields) - set(TOPICS))
    if undescribed:
        raise ValueError(f"streams/tools/asyncapi.py describes no topic for TopicNames.{', '.join(undescribed)}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for field in fields:
        spec, address = TOPICS[field], getattr(topics, field)
        names = _messages(topics, field)
        receives = spec["worker"] == "reads"
        kinds = [k for k in NOTICE_KINDS if topics.for_notice_kind(k) == address]
        about = spec["about"] + (f" Notice kinds here: {', '.join(kinds)}." if kinds else "")
        channels[field] = {
            "address": address,
            "title": address,
            "description": f"{about} Published by {spec['publisher']}; the worker "
                           f"{'reads' if receives else 'writes'} it.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
            "bindings": {"kafka": {"topic": address, "bindingVersion": _BINDING}},
            "x-publisher": spec["publisher"],
        }
        operations[f"{'receive' if receives else 'send'}_{field}"] = {
            "action": "receive" if receives else "send",
            "channel": {"$ref": f"#/channels/{field}"},
            "summary": f"The worker {'reads' if receives else 'writes'} {address}.",
            "messages": [{"$ref": f"#/channels/{field}/messages/{name}"} for name in names],
        }
        key = {"type": "string", "description": spec["key"]} if "key" in spec else _ACCOUNT_KEY
        for name in names:
            messages[name] = {
                "name": name,
                "title": name,
                "contentType": "application/json",
                "payload": {"schemaFormat": "application/schema+json;version=2020-12",
                            "schema": {"$ref": f"json/{name}.schema.json"}},
                "bindings": {"kafka": {"key": key, "bindingVersion": _BINDING}},
            }
    app_id = Settings.model_fields["app_id"].default  # the defaults, whatever this process's environment says
    bootstrap = Settings.model_fields["bootstrap_servers"].default
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "dunning-stream",
            "version": version("dunning-stream"),
            "description": (
                "Every Kafka topic the dunning worker reads or writes, from the worker's side: it receives what "
                "billing, collections and operators publish and sends notices, decisions, dead letters and the "
                "audit trail. Values are JSON, keys are UTF-8 strings; payload schemas are the JSON Schemas in "
                "schemas/json/ (draft 2020-12, referenced relative to this file). Topic names are the defaults "
                "(DUNNING_TOPIC__<NAME> renames them). Besides these, the worker keeps its state in Faust "
                f"changelog topics ({app_id}-dunning-accounts-changelog and "
                f"{app_id}-dunning-platform-changelog, named after DUNNING_APP_ID): internal, binary, "
                "not for other applications. Generated by `dunning schemas export`."),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": bootstrap, "protocol": "kafka",
                              "description": "the local broker (tools/kafka/kafka-local); KAFKA_BOOTSTRAP_SERVERS "
                                             "names yours"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> str:
    header = "# Generated by `dunning schemas export` from streams/tools/asyncapi.py; do not edit.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, width=120, allow_unicode=True)


def stale(path: Path = ASYNCAPI_PATH) -> bool:
    return not path.exists() or path.read_text() != rendered()


def write(path: Path = ASYNCAPI_PATH) -> None:
    path.write_text(rendered())
