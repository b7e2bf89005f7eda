"""Output: what the worker writes to the dead-letter topic for a message it could not use."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DeadLetterReason = Literal["malformed_json", "invalid_event", "wrong_topic", "key_mismatch", "misrouted", "empty"]


class MessageOrigin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


class DeadLetter(BaseModel):
    """The original bytes, where they came from and why they were refused. Nothing is lost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: DeadLetterReason
    message: str = Field(description="what was wrong, for a person")
    errors: list[str] = Field(default_factory=list, description="one line per validation error")
    origin: MessageOrigin
    key_base64: str | None = None
    value_base64: str = Field(description="the original value bytes, base64")
    value_text: str | None = Field(default=None, description="the original value, when it is UTF-8 text")
