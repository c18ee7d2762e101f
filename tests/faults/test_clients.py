"""Which clients are on SSE (clients.transport): the choice depends on the
client number only, so a run split over processes (--first) makes the same
one, and --sse-share / --sse-bare-share mean what they say."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from types import SimpleNamespace

from clients import transport


def kinds(n: int, share, bare) -> list[str]:
    opts = SimpleNamespace(sse_share=Fraction(share), sse_bare_share=Fraction(bare))
    return [transport(i, opts) for i in range(n)]


def test_every_third_client_is_on_sse_and_every_other_of_those_is_a_bare_eventsource():
    assert kinds(12, "1/3", "1/2") == ["ws", "ws", "sse", "ws", "ws", "sse-bare"] * 2
    assert Counter(kinds(200, "1/3", "1/2")) == {"ws": 134, "sse": 33, "sse-bare": 33}


def test_the_shares_at_their_ends():
    assert set(kinds(30, 0, "1/2")) == {"ws"}
    assert set(kinds(30, 1, 0)) == {"sse"}
    assert set(kinds(30, 1, 1)) == {"sse-bare"}
    assert Counter(kinds(500, "1/3", "1/2")) == {"ws": 334, "sse": 83, "sse-bare": 83}
