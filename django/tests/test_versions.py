"""Versions in context responses (SPEC 10.1, mizan_hub.versions): read with
the real publish script's counters in a real Redis, sent in X-Mizan-Version,
and used as ``since`` against the real hub."""

from __future__ import annotations

import pytest
import redis
from django.db import transaction
from django.test import Client as HttpClient
from django.test import override_settings

import mizan_hub
from mizan_hub import protocol, stats, versions
from tests import urls_versions
from tests.conftest import HUB
from tests.test_e2e_hub import Client, hub  # noqa: F401  (the hub fixture)
from tests.testapp.models import Todo

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.urls_versions")]


@pytest.fixture(autouse=True)
def no_hooks():
    urls_versions.between.clear()
    yield
    urls_versions.between.clear()


def published_version(events, context):
    return events.envelopes()[-1]["versions"][context]


def test_a_context_never_published_is_at_0_0(r):
    assert versions.read_versions(["todos", "user"]) == {"todos": "0:0", "user": "0:0"}


def test_versions_are_the_publish_scripts_counters_read_in_one_round_trip(r, events, monkeypatch):
    mizan_hub.invalidate("todos")
    mizan_hub.invalidate("todos", ("user", {"user_id": 5}))
    seen = events.envelopes()[-1]["versions"]
    before = r.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)

    def no_single_commands(*args, **kwargs):
        raise AssertionError(f"a command outside the pipeline: {args}")
    monkeypatch.setattr(redis.Redis, "execute_command", no_single_commands)
    got = versions.read_versions(["todos", "user", "todos", "feed"])
    monkeypatch.undo()
    assert got == {"todos": seen["todos"], "user": seen["user"], "feed": "0:0"}
    assert got["todos"].endswith(":2") and got["user"].endswith(":1")
    assert r.info("commandstats")["cmdstat_hmget"]["calls"] - before == 3  # once per context


def test_the_header_round_trips_and_refuses_what_is_not_a_version():
    value = versions.version_header({"todos": "k2f9a00q1:42", "résumé": "0:0"})
    assert value == "todos;v=k2f9a00q1:42, r%C3%A9sum%C3%A9;v=0:0"
    assert versions.parse_version_header(value) == {"todos": "k2f9a00q1:42", "résumé": "0:0"}
    # listed twice with different versions (headers joined by a proxy): unknown
    assert versions.parse_version_header("a;v=x:1, b;v=y:2, a;v=x:2, b;v=y:2") == {"a": "0:0", "b": "y:2"}
    assert versions.parse_version_header("") == {}
    for bad in ["todos", "todos;", "todos;v=1", "todos;v=x:01", "todos;v=X:1", "todos;v=x:1;w=2",
                "todos;n=x:1", "todos;v=x:1 y"]:
        with pytest.raises(protocol.ProtocolError) as info:
            versions.parse_version_header(bad)
        assert info.value.code == "bad_header", bad
    with pytest.raises(protocol.ProtocolError):
        versions.version_header({"todos": "42"})


def test_a_context_endpoint_sends_the_version_it_read_before_its_data(r, events):
    mizan_hub.invalidate("todos")
    response = HttpClient().get("/todos/")
    assert response.status_code == 200
    assert versions.parse_version_header(response["X-Mizan-Version"]) == {
        "todos": published_version(events, "todos")}

    # a publish between the version read and the data read: the data has the
    # new todo, the version does not count it (older: safe)
    urls_versions.between.append(lambda: Todo.objects.create(title="milk"))
    response = HttpClient().get("/ctx/list/")
    assert response.json()["todos"] == ["milk"]
    sent = versions.parse_version_header(response["X-Mizan-Version"])
    assert sent == {"todos": versions.read_versions(["todos"])["todos"].rsplit(":")[0] + ":1", "list": "0:0"}
    assert versions.read_versions(["todos"])["todos"].endswith(":2")


def test_async_views_and_answers_without_data(r):
    response = HttpClient().get("/todos-async/")
    assert response.status_code == 200 and response["X-Mizan-Version"] == "todos;v=0:0"
    response = HttpClient().get("/missing/")
    assert response.status_code == 404 and "X-Mizan-Version" not in response
    # a name from the URL that is no context name: the view answers, no version
    response = HttpClient().get("/ctx/%01/")
    assert response.status_code == 200 and "X-Mizan-Version" not in response


def test_a_bad_context_name_fails_at_decoration():
    with pytest.raises(protocol.ProtocolError):
        versions.context_versions("to\x01dos")


def test_redis_down_costs_the_header_not_the_response(r):
    stats.reset()
    with override_settings(MIZAN_HUB={**_settings(), "REDIS_URL": "redis://127.0.0.1:9/0"}):
        response = HttpClient().get("/todos/")
    assert response.status_code == 200 and "X-Mizan-Version" not in response
    assert stats.get("version_read_failed") == 1


def test_test_mode_answers_0_0_without_redis(r):
    stats.reset()
    with override_settings(MIZAN_HUB={**_settings(), "TEST_MODE": True,
                                      "REDIS_URL": "redis://127.0.0.1:9/0"}):
        response = HttpClient().get("/todos/")
        assert response["X-Mizan-Version"] == "todos;v=0:0"
        assert HttpClient().get("/todos-async/")["X-Mizan-Version"] == "todos;v=0:0"
    assert stats.get("version_read_failed") == 0


def _settings():
    from django.conf import settings
    return settings.MIZAN_HUB


# -- against the real hub: since from a response ------------------------------

needs_hub = pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}")


@needs_hub
def test_no_publish_since_the_response_no_invalidation(hub):  # noqa: F811
    with transaction.atomic():
        Todo.objects.create(title="eggs")
    since = versions.parse_version_header(HttpClient().get("/todos/")["X-Mizan-Version"])["todos"]
    assert since != "0:0"
    client = Client(hub)
    client.send({"action": "subscribe", "context": "todos", "since": since})
    assert client.recv().get("subscribed") is True
    client.nothing()


@needs_hub
def test_a_publish_between_version_read_and_data_read_still_invalidates(hub):  # noqa: F811
    mizan_hub.invalidate("todos")
    urls_versions.between.append(lambda: Todo.objects.create(title="milk"))
    since = versions.parse_version_header(HttpClient().get("/todos/")["X-Mizan-Version"])["todos"]
    assert since.endswith(":1")
    # the data had it already: this invalidation is over, never under
    client = Client(hub)
    client.send({"action": "subscribe", "context": "todos", "since": since})
    frame = client.recv()
    assert frame.get("reason") == "resume", frame
    assert frame["invalidate"] == [{"context": "todos", "params": {}}] and frame["versions"]["todos"].endswith(":2")
    assert client.recv().get("subscribed") is True


@needs_hub
def test_a_publish_after_the_response_invalidates_the_scopes_it_matches(hub):  # noqa: F811
    # one version covers every scope of the context; buckets make each precise
    mizan_hub.invalidate(("list", {"list_id": 1}))
    since = versions.parse_version_header(HttpClient().get("/ctx/list/")["X-Mizan-Version"])["list"]
    mizan_hub.invalidate(("list", {"list_id": 2}))
    one, two = Client(hub), Client(hub)
    one.send({"action": "subscribe", "context": "list", "params": {"list_id": 1}, "since": since})
    if protocol.bucket(protocol.canonical_key("list", {"list_id": "1"})) != protocol.bucket(
            protocol.canonical_key("list", {"list_id": "2"})):
        assert one.recv().get("subscribed") is True
        one.nothing()
    two.send({"action": "subscribe", "context": "list", "params": {"list_id": 2}, "since": since})
    assert two.recv().get("reason") == "resume"


# -- izana's context fetch ------------------------------------------------------

def test_izanas_context_fetch_carries_the_version(r, events, monkeypatch):
    pytest.importorskip("izana")
    from tests import izana_fixtures
    izana_fixtures.install()
    try:
        from django.contrib.auth.models import User
        http = HttpClient()
        http.force_login(User.objects.create_user("staff", password="x", is_staff=True))
        mizan_hub.invalidate(("profile", {"user_id": 5}))
        response = http.get("/api/izana/ctx/profile/?user_id=5")
        assert response.status_code == 200, response.content
        assert response.json()["profile_name"] == {"result": {"name": "user 5"}}
        assert versions.parse_version_header(response["X-Mizan-Version"]) == {
            "profile": published_version(events, "profile")}
        # izana's origin cache on: a cached body's read time is unknown, no version
        monkeypatch.setattr(versions, "_izana_caches", lambda: True)
        response = http.get("/api/izana/ctx/profile/?user_id=5")
        assert response.status_code == 200 and "X-Mizan-Version" not in response
    finally:
        izana_fixtures.uninstall()


# -- server-rendered data: izana's SSR and Django templates ----------------------

class FakeBridge:
    """Stands in for izana's Bun SSR worker only (no Bun here): it renders
    every component as one element and keeps the props it was given."""

    def __init__(self):
        self.props = []

    def render(self, file, props=None):
        from izana.ssr.bridge import RenderResult
        self.props.append(props)
        return RenderResult(html="<main>page</main>")


def izana_engine(tmp_path):
    from mizan_hub.izana_ssr import IzanaTemplates
    (tmp_path / "Page.tsx").write_text("export default () => null\n")
    engine = IzanaTemplates({"NAME": "izana", "DIRS": [str(tmp_path)], "APP_DIRS": False,
                             "OPTIONS": {"worker": str(tmp_path / "worker.tsx")}})
    engine._bridge = FakeBridge()
    return engine


def page_request():
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    return request


def embedded(html, name):
    """The JSON izana embedded as window.NAME, and the mizan_version set on it after."""
    import json
    import re
    data = re.search(rf"window\.{name}=(\{{.*?\}});", html)
    version = re.search(rf"window\.{name}\.mizan_version=(\"[^\"]*\");", html)
    return (json.loads(data.group(1)) if data else None), (json.loads(version.group(1)) if version else None)


@pytest.fixture
def izana_global():
    pytest.importorskip("izana")
    from tests import izana_fixtures
    izana_fixtures.install_global()
    yield izana_fixtures
    izana_fixtures.uninstall_global()


def test_izana_ssr_embeds_the_global_version_read_before_its_bundle(r, events, izana_global, tmp_path):
    mizan_hub.invalidate("global")
    before = published_version(events, "global")
    # a change to the global context published while izana reads its bundle
    izana_global.ssr_between.append(lambda: mizan_hub.invalidate("global"))
    html = izana_engine(tmp_path).get_template("Page.tsx").render({"title": "t"}, page_request())
    bundle, version = embedded(html, "__IZANA_SSR_DATA__")
    assert bundle == {"site_banner": {"result": {"text": "hello"}}}, html
    # read before the bundle: older than the publish the bundle may reflect (safe)
    assert versions.parse_version_header(version) == {"global": before}
    assert versions.read_versions(["global"])["global"] == published_version(events, "global") != before
    assert html.startswith('<div id="izana-root"><main>page</main></div><script>window.__IZANA_SSR_PROPS__=')


@needs_hub
def test_izana_ssr_version_as_since_makes_the_hub_invalidate_what_changed_during_the_render(
        hub, events, izana_global, tmp_path):  # noqa: F811
    mizan_hub.invalidate("global")
    engine = izana_engine(tmp_path)
    _, quiet = embedded(engine.get_template("Page.tsx").render({}, page_request()), "__IZANA_SSR_DATA__")
    izana_global.ssr_between.append(lambda: mizan_hub.invalidate("global"))
    _, changed = embedded(engine.get_template("Page.tsx").render({}, page_request()), "__IZANA_SSR_DATA__")
    client = Client(hub)
    client.send({"action": "subscribe", "context": "global", "since": versions.parse_version_header(changed)["global"]})
    assert client.recv().get("reason") == "resume", "changed while the page read it: invalidated"
    assert client.recv().get("subscribed") is True
    other = Client(hub)
    other.send({"action": "subscribe", "context": "global", "since": versions.parse_version_header(quiet)["global"]})
    assert other.recv().get("reason") == "resume", "the first page's version is older than the later publish"
    latest = versions.read_versions(["global"])["global"]
    third = Client(hub)
    third.send({"action": "subscribe", "context": "global", "since": latest})
    assert third.recv().get("subscribed") is True
    third.nothing()


def test_izana_ssr_props_carry_what_the_view_read_and_nothing_without_a_global_context(r, events, tmp_path,
                                                                                        monkeypatch):
    pytest.importorskip("izana")
    from django.http import HttpResponse
    mizan_hub.invalidate("todos")
    engine = izana_engine(tmp_path)

    @versions.context_versions("todos")
    def page(request):
        return HttpResponse(engine.get_template("Page.tsx").render({"title": "t"}, request))

    def no_redis(*contexts):
        raise AssertionError(f"versions of {contexts} read although izana embeds no global bundle")
    import mizan_hub.izana_ssr as izana_ssr
    monkeypatch.setattr(izana_ssr, "ssr_version", no_redis)
    response = page(page_request())
    html = response.content.decode()
    props, _ = embedded(html, "__IZANA_SSR_PROPS__")
    want = f"todos;v={published_version(events, 'todos')}"
    assert props == {"title": "t", "mizan_version": want} and engine._bridge.props[-1]["mizan_version"] == want
    assert response["X-Mizan-Version"] == want
    assert "__IZANA_SSR_DATA__" not in html, "no global context: izana embeds no bundle, and no version"


def test_izana_ssr_without_redis_renders_as_izana_does(izana_global, tmp_path):
    from izana.ssr.backend import IzanaTemplate
    stats.reset()
    engine = izana_engine(tmp_path)
    with override_settings(MIZAN_HUB={**_settings(), "REDIS_URL": "redis://127.0.0.1:9/0"}):
        html = engine.get_template("Page.tsx").render({"title": "t"}, page_request())
    assert html == IzanaTemplate(str(tmp_path / "Page.tsx"), FakeBridge()).render({"title": "t"}, page_request())
    assert stats.get("version_read_failed") == 1


def test_the_context_processor_gives_templates_what_the_view_read(r, events):
    from django.http import HttpResponse
    from django.template import Engine, RequestContext
    mizan_hub.invalidate("todos")
    engine = Engine(context_processors=["mizan_hub.context_processors.versions"])
    template = engine.from_string('{{ mizan_version|json_script:"mizan-version" }}')

    @versions.context_versions("todos", lambda request: ["user"])
    def page(request):
        return HttpResponse(template.render(RequestContext(request, {})))

    html = page(page_request()).content.decode()
    want = f"todos;v={published_version(events, 'todos')}, user;v=0:0"
    assert html == f'<script id="mizan-version" type="application/json">"{want}"</script>'
    assert template.render(RequestContext(page_request(), {})) == (
        '<script id="mizan-version" type="application/json">null</script>')


def test_ssr_version_is_the_header_value_or_nothing(r, events):
    mizan_hub.invalidate("todos")
    assert versions.ssr_version("todos", "user") == (
        f"todos;v={published_version(events, 'todos')}, user;v=0:0")
    with override_settings(MIZAN_HUB={**_settings(), "REDIS_URL": "redis://127.0.0.1:9/0"}):
        assert versions.ssr_version("todos") is None
