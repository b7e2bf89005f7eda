"""Worker configuration from environment variables (DUNNING_*, plus the usual KAFKA_BOOTSTRAP_SERVERS)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
_ANY_ADDRESS = ("0.0.0.0", "::", "")  # a web host that means "every interface"
# The worker's producer request limit (Faust's default), under the broker's default message.max.bytes (1,048,588):
# every record the worker sends must fit it, a dead letter included (streams/runtime/processor.py).
MAX_REQUEST_BYTES = 1_000_000


class TopicNames(BaseModel):
    """Every topic the worker reads or writes. The inputs and the clock must be co-partitioned."""

    invoices: str = "billing.invoices"
    payments: str = "billing.payments"
    arrangements: str = "collections.arrangements"
    profiles: str = "accounts.profiles"
    clock: str = "dunning.clock"
    reminders: str = "dunning.reminders"
    urgent_notices: str = "dunning.urgent-notices"
    handoffs: str = "dunning.handoffs"
    offers: str = "dunning.offers"
    decisions: str = "dunning.decisions"
    dead_letter: str = "dunning.dead-letter"
    audit: str = "dunning.audit"
    rulesets: str = "dunning.rulesets"  # compacted, one partition: published policies (streams/runtime/rulesets.py)
    receipts: str = "notifications.receipts"  # delivery receipts from the notification services (an input)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.invoices, self.payments, self.arrangements, self.profiles, self.clock, self.receipts)

    @property
    def notices(self) -> tuple[str, ...]:
        """The topics notices go to: to customers, to teams, and decisions to billing (for_notice_kind)."""
        return (self.reminders, self.urgent_notices, self.handoffs, self.offers, self.decisions)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.reminders, self.urgent_notices, self.handoffs, self.offers, self.decisions, self.dead_letter,
                self.audit)

    def for_event_type(self, event_type: str) -> str:
        """Where a billing system publishes each event type (platform-wide ones go to the clock topic)."""
        family = event_type.split(".", 1)[0]
        return {
            "invoice": self.invoices,
            "payment": self.payments,
            "arrangement": self.arrangements,
            "dispute": self.arrangements,
            "debt": self.arrangements,
            "account": self.profiles,
            "platform": self.clock,
            "clock": self.clock,
            "notice": self.receipts,
            # collectors and agencies already publish here; one topic keeps a call's record and the promise it
            # ended in in order
            "contact": self.arrangements,
        }[family]

    def for_notice_kind(self, kind: str) -> str:
        return {"reminder": self.reminders, "urgent_notice": self.urgent_notices, "handoff": self.handoffs,
                "offer": self.offers, "settlement": self.decisions, "write_off": self.decisions,
                "recovery": self.decisions, "restriction": self.decisions}[kind]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUNNING_", env_nested_delimiter="__", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "DUNNING_BOOTSTRAP_SERVERS"),
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None

    app_id: str = "dunning-stream"
    partitions: int = Field(default=6, ge=1, le=1000, description="partitions of every input, clock and output topic")
    replication_factor: int = Field(default=1, ge=1)
    topic: TopicNames = TopicNames()

    rules: Path = DEFAULT_RULES
    state_dir: Path = Path("var/worker")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_token: SecretStr | None = Field(default=None, description="if set, /accounts wants 'Authorization: Bearer'")
    advertised_url: str | None = Field(default=None, description="how other workers reach this one's web port")
    tick_interval: float = Field(default=3600.0, gt=0, description="seconds between clock ticks")
    clock_enabled: bool = Field(default=True, description="false when something else publishes the ticks (tests)")
    log_level: str = "info"
    # a larger batch sends, stores and commits for more events at once, and meets an account again more often:
    # 10,000 did 1.7x the events/s of 2,000 in make bench (20,000 no more)
    batch_size: int = Field(default=10000, ge=1)
    commit_interval: float = Field(default=1.0, gt=0, description="seconds between offset commits")
    # about 12 KiB each after the bench's 60 days (tracemalloc), so some 120 MiB at the default; long-lived accounts'
    # states are larger, which the stored bytes bound: a decoded state takes some 14x its stored value
    cached_accounts: int = Field(default=10000, ge=0, description="decoded account states kept across batches")
    cached_accounts_stored_mb: float = Field(default=8.0, gt=0,
                                             description="MiB of stored values the decoded states kept stand for")
    session_timeout: float = Field(default=10.0, gt=0, description="seconds before a dead worker's partitions move")
    # Faust's RocksDB defaults allow each store (a table's partition) 3 x 64 MiB of memtables and a 2 GiB block
    # cache, so memory grew with the data a worker had written; these bound a store to 2 buffers plus the cache.
    rocksdb_write_buffer_mb: int = Field(default=8, ge=1, description="MiB per RocksDB memtable (2 per store)")
    rocksdb_block_cache_mb: int = Field(default=16, ge=1, description="MiB of RocksDB block cache per store")
    check_partitioning: bool = Field(default=True, description="dead-letter messages keyed to the wrong partition")
    # Faust's assignor places at most (members of the group - 1) copies, so with one worker there are none: 1 costs
    # a lone worker nothing, and a takeover after a SIGKILL reads only what the survivor's copy lacks.
    standby_replicas: int = Field(default=1, ge=0, description="standby copies of each table partition")

    @field_validator("bootstrap_servers")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is empty")
        return value.strip()

    @model_validator(mode="after")
    def _security_complete(self) -> "Settings":
        """Half a security setup would connect in plain text or fail later with a less clear error."""
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(f"DUNNING_SECURITY_PROTOCOL={self.security_protocol} needs DUNNING_SASL_MECHANISM, "
                             "DUNNING_SASL_USERNAME and DUNNING_SASL_PASSWORD")
        if self.sasl_mechanism and not sasl:
            raise ValueError(f"DUNNING_SASL_MECHANISM is set but DUNNING_SECURITY_PROTOCOL is "
                             f"{self.security_protocol}: SASL_SSL (or SASL_PLAINTEXT) uses it")
        if self.ssl_cafile is not None and not self.ssl_cafile.is_file():
            raise ValueError(f"DUNNING_SSL_CAFILE: no file {self.ssl_cafile}")
        return self

    @property
    def canonical_url(self) -> str:
        """Where other workers reach this one's web side."""
        if self.advertised_url:
            return self.advertised_url
        import socket

        host = socket.gethostname() if self.web_host in _ANY_ADDRESS else self.web_host
        return f"http://{host}:{self.web_port}"

    @property
    def local_url(self) -> str:
        """Where a client on this machine reaches the worker's web side."""
        host = "127.0.0.1" if self.web_host in _ANY_ADDRESS else self.web_host
        return f"http://{host}:{self.web_port}"

    def kafka_client_options(self) -> dict[str, object]:
        """Options for aiokafka clients (publish, tail, admin) matching the worker's security settings."""
        options: dict[str, object] = {"bootstrap_servers": self.bootstrap_servers,
                                      "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password.get_secret_value() if self.sasl_password else None)
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        return options
