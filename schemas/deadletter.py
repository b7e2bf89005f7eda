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
    """The original bytes (or, for a large message, their start, length and hash), where they came from and why
    they were refused. Nothing is lost: the original stays readable at its origin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: DeadLetterReason
    message: str = Field(description="what was wrong, for a person")
    errors: list[str] = Field(default_factory=list, description="one line per validation error")
    origin: MessageOrigin
    key_base64: str | None = None
    value_base64: str | None = Field(
        default=None, description="the original value bytes, base64 (only their start when truncated); absent "
                                  "when the message had no value (NULL, a tombstone), empty for an empty value")
    value_text: str | None = Field(default=None, description="value_base64's bytes, when they are UTF-8 text")
    value_length: int | None = Field(default=None, description="the original value's length in bytes")
    value_sha256: str | None = Field(default=None, description="SHA-256 of the original value, hex")
    truncated: bool = Field(
        default=False, description="the letter would not fit a producer request: value_base64 and value_text hold "
                                   "the value's start, and the key, message and errors may be cut short; the "
                                   "whole message is at origin")
