"""The header helpers and the middleware that fans out declared invalidations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.http import HttpResponse, JsonResponse

import mizan_hub
from mizan_hub import protocol, stats
from mizan_hub.transports import declared_invalidations

pytestmark = pytest.mark.django_db(transaction=True)

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"


def test_header_helpers():
    value = mizan_hub.invalidation_header("notifications", ("user", {"user_id": 5}), ("feed", {}),
                                          ("search", {"q": "a,b;c"}))
    assert value == "notifications, user;user_id=5, feed;, search;q=a%2Cb%3Bc"
    assert mizan_hub.parse_invalidation_header(value) == [
        "notifications", {"context": "user", "params": {"user_id": "5"}},
        {"context": "feed", "params": {}}, {"context": "search", "params": {"q": "a,b;c"}}]
    response = mizan_hub.add_invalidation_header(HttpResponse(), "a")
    mizan_hub.add_invalidation_header(response, ("b", {"k": True}))
    assert response["X-Mizan-Invalidate"] == "a, b;k=true"


@pytest.mark.parametrize("case", json.loads((VECTORS / "roundtrip.json").read_text())["cases"],
                         ids=lambda c: c["name"])
def test_helpers_agree_with_the_shared_roundtrip_vectors(case):
    if "error" in case:
        with pytest.raises(protocol.ProtocolError):
            mizan_hub.invalidation_header(*case["input"])
        return
    header = mizan_hub.invalidation_header(*case["input"])
    assert header == case["expect"]["header"]
    assert mizan_hub.parse_invalidation_header(header) == case["expect"]["json"]


def test_declared_invalidations_prefers_the_exact_json_body():
    response = JsonResponse({"result": 1, "invalidate": [{"context": "feed", "params": {}}]})
    response["X-Izana-Invalidate"] = "feed"  # izana writes {} params as unscoped
    assert declared_invalidations(response) == [{"context": "feed", "params": {}}]
    assert declared_invalidations(HttpResponse("{\"invalidate\": [\"x\"]}")) == []  # not JSON type
    assert declared_invalidations(JsonResponse([1, 2], safe=False)) == []


def test_middleware_publishes_a_json_body(client, r, events):
    assert client.post("/json/").status_code == 200
    [env] = events.envelopes()
    assert env["invalidate"] == ["todos", {"context": "todo", "params": {"id": "5"}}]


def test_middleware_publishes_the_header(client, r, events):
    client.post("/header/")
    client.post("/izana-header/")
    envs = events.envelopes()
    assert [e["invalidate"] for e in envs] == [
        [{"context": "user", "params": {"user_id": "5"}}, "notifications"],
        [{"context": "feed", "params": {}}]]


def test_middleware_ignores_errors_and_plain_responses(client, r, events):
    client.post("/failed/")
    client.get("/plain/")
    assert events.texts() == []


def test_middleware_counts_a_bad_declaration(client, r, events):
    response = client.post("/bad-header/")
    assert response.status_code == 200 and response.content == b"ok"
    assert stats.get("middleware_bad_declarations") == 1
    assert events.texts() == []


def test_middleware_does_not_repeat_what_the_view_published(client, r, events):
    client.post("/already/")
    envs = events.envelopes()
    assert [e["invalidate"] for e in envs] == [
        ["todos", {"context": "todo", "params": {"id": "1"}}], ["other"]]
