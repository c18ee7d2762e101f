"""Against the real django-izana / izana-core (the optional extra)."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import include, path

import mizan_hub

pytest.importorskip("izana")
pytest.importorskip("izana_core")

from mizan_hub import tokens  # noqa: E402
from mizan_hub.registry import build_registry  # noqa: E402
from mizan_hub.worker import Worker  # noqa: E402
from tests import izana_fixtures  # noqa: E402
from tests.test_worker import add_entry  # noqa: E402
from tests.urls import urlpatterns as base_patterns  # noqa: E402

urlpatterns = [*base_patterns, path("api/izana/", include("izana.urls"))]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def izana_registered():
    izana_fixtures.install()
    izana_fixtures.calls.clear()
    yield
    izana_fixtures.uninstall()


def test_registry_reads_izana_contexts_and_channels():
    registry = build_registry()
    assert registry["contexts"]["profile"] == {
        "endpoints": ["/api/izana/ctx/profile/"], "params": ["user_id"], "guard": "staff"}
    assert registry["contexts"]["vault"]["guard"] == "token"
    assert registry["channels"]["room"] == {"params": ["room"], "guard": "token"}
    # settings still win, key by key
    assert registry["contexts"]["user"]["param_rules"] == {"user_id": "sub"}
    base = mizan_hub.conf.user_settings()
    with override_settings(MIZAN_HUB={**base, "CONTEXTS": {
            "profile": {"guard": "auth", "param_rules": {"user_id": "sub"}}}}):
        assert build_registry()["contexts"]["profile"] == {
            "endpoints": ["/api/izana/ctx/profile/"], "params": ["user_id"], "guard": "auth",
            "param_rules": {"user_id": "sub"}}
    with override_settings(MIZAN_HUB={**base, "IZANA": {"ENABLED": False}}):
        assert "profile" not in build_registry()["contexts"]


def test_worker_runs_websocket_functions_and_fans_out(r, subscriber, events, django_user_model):
    user = django_user_model.objects.create_user("ann")
    replies = subscriber("mizan:hub:h1")
    worker = Worker(consumer="w")
    worker.ensure_group()
    ident = {"sub": str(user.pk), "staff": False, "super": False}
    add_entry(r, "rpc", {"action": "rpc", "id": 1, "fn": "rename",
                         "args": {"user_id": 5, "name": "x"}}, identity=ident)
    add_entry(r, "rpc", {"action": "rpc", "id": 2, "fn": "http_only", "args": {"user_id": 5}})
    add_entry(r, "rpc", {"action": "rpc", "id": 3, "fn": "rename", "args": {"user_id": "x"}})
    add_entry(r, "ctx", {"action": "ctx", "id": 4, "context": "profile",
                         "params": {"user_id": 5}}, identity=ident)
    worker.step()
    frames = [e["frame"] for e in replies.envelopes()]
    # a dict return is a "primitive" output to izana: wrapped in {"result": ...}
    assert frames[0] == {"id": 1, "ok": True, "data": {
        "result": {"result": {"ok": True}}, "invalidate": [{"context": "profile", "params": {"user_id": 5}}]}}
    assert (frames[1]["ok"], frames[1]["error"]["code"]) == (False, "FORBIDDEN")
    assert (frames[2]["ok"], frames[2]["error"]["code"]) == (False, "VALIDATION_ERROR")
    # the staff-only member of the context refuses a plain user, as over HTTP
    assert (frames[3]["ok"], frames[3]["error"]["code"]) == (False, "FORBIDDEN")
    assert izana_fixtures.calls == [(5, "x")]
    [env] = events.envelopes()
    assert env["invalidate"] == [{"context": "profile", "params": {"user_id": "5"}}]


def test_worker_hands_messages_to_izana_channels(r, subscriber, events, django_user_model):
    user = django_user_model.objects.create_user("ann")
    replies = subscriber("mizan:hub:h1")
    worker = Worker(consumer="w")
    worker.ensure_group()
    ident = {"sub": str(user.pk), "staff": False, "super": False}
    add_entry(r, "message", {"action": "message", "channel": "room", "params": {"room": "a"},
                             "data": {"text": "hi"}}, identity=ident)
    add_entry(r, "message", {"action": "message", "channel": "room", "params": {"room": "secret"},
                             "data": {"text": "hi"}}, identity=ident)
    worker.step()
    [env] = events.envelopes()
    assert (env["channel"], env["params"], env["type"], env["data"]) == (
        "room", {"room": "a"}, "Said", {"text": "HI", "by": str(user.pk)})
    [refused] = replies.envelopes()
    assert refused["frame"]["error"]["code"] == "internal"


@override_settings(ROOT_URLCONF=__name__)
def test_middleware_fans_out_izana_mutation_responses(client, r, events):
    response = client.post("/api/izana/call/", data=json.dumps(
        {"fn": "rename", "args": {"user_id": 5, "name": "y"}}), content_type="application/json")
    assert response.status_code == 200, response.content
    assert response["X-Izana-Invalidate"] == "profile;user_id=5"
    assert response.json()["invalidate"] == [{"context": "profile", "params": {"user_id": 5}}]
    [env] = events.envelopes()  # one publish: the body and the header say the same
    assert env["invalidate"] == [{"context": "profile", "params": {"user_id": "5"}}]


@override_settings(ROOT_URLCONF=__name__)
def test_izana_guards_answer_subscription_tokens(client, django_user_model):
    user = django_user_model.objects.create_user("ann")
    admin = django_user_model.objects.create_superuser("root")
    client.force_login(user)
    assert client.get("/hub/subscription-token/context/vault/").status_code == 403
    assert client.get("/hub/subscription-token/channel/room/?room=a").status_code == 200
    assert client.get("/hub/subscription-token/channel/room/?room=secret").status_code == 403
    client.force_login(admin)
    response = client.get("/hub/subscription-token/context/vault/")
    assert tokens.decode(response.json()["token"])["name"] == "vault"


def test_connection_tokens_are_minted_by_izana(django_user_model):
    from izana_core.mwt import decode_mwt
    user = django_user_model.objects.create_user("ann", is_staff=True)
    token, _ = mizan_hub.connection_token(user)
    payload = decode_mwt(token, "tests-token-key-0123456789abcdef0123456789", audience="mizan")
    assert (payload.sub, payload.staff, payload.kid) == (str(user.pk), True, "v1")
