"""A published policy on the compacted topic `dunning.rulesets`, keyed by its digest (so every distinct policy
stays on the topic and a republished one is the latest again).

It carries the policy file's text and that of every ruleset file it names, as published: a worker validates it
with the same loader as `dunning rules check`. Each partition runs it from its first clock tick at or after
`effective_after`, so every partition switches at the same logical time and the simulator can replay the switch.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import Timestamp


class PublishedRuleset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str = Field(description="SHA-256 prefix of the files' names and texts; the record's key")
    version: str = Field(description="the ruleset's version, or the experiment's id with each variant's version")
    main: str = Field(description="the policy file's name, a key of `sources`")
    sources: dict[str, str] = Field(description="file name (as the policy names it) -> its YAML text")
    published_at: Timestamp = Field(description="wall-clock time of `dunning rules publish`")
    effective_after: Timestamp = Field(description="logical time: a partition switches at its first clock tick "
                                                   "at or after it")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()
