"""The worker's /accounts endpoint wants `Authorization: Bearer <DUNNING_WEB_TOKEN>`, compared in constant time."""
from __future__ import annotations

import hmac

import pytest

from streams.runtime.app import authorized

TOKEN = "s3cret-token"


@pytest.mark.parametrize(("header", "allowed"), [
    (f"Bearer {TOKEN}", True),
    (None, False),
    ("", False),
    (TOKEN, False),                          # the token without its scheme
    (f"Bearer {TOKEN[:-1]}", False),         # all but the last character right
    (f"Bearer {TOKEN}x", False),             # a longer one starting with the token
    (f"bearer {TOKEN}", False),
    ("Bearer s3cret-tökén", False),          # not ASCII: refused, not raised (compare_digest takes only ASCII text)
    ("Bearer \udcff", False),                # a header byte aiohttp could not decode
])
def test_only_the_exact_bearer_token_is_authorized(header, allowed):
    assert authorized(header, TOKEN) is allowed


def test_the_token_is_compared_in_constant_time(monkeypatch):
    """Every check goes through hmac.compare_digest, whose time does not depend on where the first difference is;
    `==` on strings stops at it, which lets a caller guess a token a character at a time."""
    compared, compare = [], hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert authorized(f"Bearer {TOKEN}", TOKEN) and not authorized("Bearer wrong", TOKEN)
    assert compared == [(f"Bearer {TOKEN}".encode(), f"Bearer {TOKEN}".encode()),
                        (b"Bearer wrong", f"Bearer {TOKEN}".encode())]
