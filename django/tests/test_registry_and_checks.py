"""The registry export and the system checks."""

from __future__ import annotations

import io
import json

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import override_settings

import mizan_hub
from tests.conftest import HUB, free_port, running_hub


def hub(**changes):
    return override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(), **changes})


def without_izana():
    return hub(IZANA={"ENABLED": False})


def test_registry_export_to_a_file(tmp_path):
    target = tmp_path / "sub" / "registry.json"
    with without_izana():
        call_command("mizan_hub_registry", output=str(target), stderr=io.StringIO())
    registry = json.loads(target.read_text())
    assert registry == {
        "version": 1,
        "default": "deny",
        "contexts": {
            "billing": {"params": ["org"], "guard": "token"},
            "list": {"params": ["list_id"], "guard": "public"},
            "notes": {"params": ["owner"], "guard": "auth"},
            "todo": {"params": ["id"], "guard": "public"},
            "todos": {"params": [], "guard": "public"},
            "user": {"endpoints": ["/api/mizan/ctx/user/"], "views": ["/profile/:user_id/"],
                     "params": ["user_id"], "guard": "auth", "param_rules": {"user_id": "sub"}},
        },
        "channels": {
            "chat": {"params": ["room"], "guard": "auth", "history": {"size": 50}},
            "ticker": {"params": [], "guard": "public"},
        },
    }


def test_registry_export_to_stdout():
    out = io.StringIO()
    with without_izana(), hub(CONTEXTS={}, CHANNELS={}, DEFAULT="allow", IZANA={"ENABLED": False}):
        call_command("mizan_hub_registry", indent=0, stdout=out)
    assert out.getvalue() == ('{"version": 1, "default": "allow", "contexts": {}, '
                              '"channels": {}}\n')


def ids(**changes):
    if "CONTEXTS" in changes:  # keep the contexts MODELS names (else W002)
        changes["CONTEXTS"] = {**mizan_hub.conf.user_settings()["CONTEXTS"], **changes["CONTEXTS"]}
    with hub(**changes):
        return sorted({m.id for m in run_checks() if m.id.startswith("mizan_hub.")})


@pytest.mark.django_db
def test_good_settings_pass_the_checks():
    assert ids() == []


@pytest.mark.parametrize("changes, expected", [
    ({"NOPE": 1}, ["mizan_hub.E001"]),
    ({"TOKEN": {"LIFTIME": 3}}, ["mizan_hub.E001"]),
    ({"REDIS_URL": "http://x"}, ["mizan_hub.E002"]),
    ({"REDIS_SENTINELS": ["nohost"]}, ["mizan_hub.E002"]),
    ({"REDIS_SENTINELS": ["h:0"]}, ["mizan_hub.E002"]),
    ({"REDIS_SENTINELS": ["h:26379"], "REDIS_URL": "unix:///r.sock"}, ["mizan_hub.E002"]),
    ({"REDIS_MASTER_NAME": ""}, ["mizan_hub.E002"]),
    ({"REDIS_SENTINELS": ["h:26379"], "REDIS_SHARDS": ["redis://a:1/0", "redis://b:1/0"]},
     ["mizan_hub.E002"]),
    ({"PREFIX": ""}, ["mizan_hub.E003"]),
    ({"PREFIX": "a b"}, ["mizan_hub.E003"]),
    ({"STRICT": "yes"}, ["mizan_hub.E004"]),
    ({"CONTEXTS": {"x": {"guard": "admins"}}}, ["mizan_hub.E005"]),
    ({"CONTEXTS": {"x": {"params": ["a"], "param_rules": {"b": "sub"}}}}, ["mizan_hub.E005"]),
    ({"CHANNELS": {"c": {"history": -1}}}, ["mizan_hub.E005"]),
    ({"CHANNELS": {"c": {"presence": "yes"}}}, ["mizan_hub.E005"]),
    ({"CONTEXTS": {"x": {"presence": True}}}, ["mizan_hub.E005"]),
    ({"CHANNELS": {"c": {"join_leave": False}}}, ["mizan_hub.E005"]),
    ({"CHANNELS": {"c": {"presence": True, "join_leave": "no"}}}, ["mizan_hub.E005"]),
    ({"CHANNELS": {"": {}}}, ["mizan_hub.E005"]),
    ({"DEFAULT": "maybe"}, ["mizan_hub.E006"]),
    ({"MODELS": {"testapp.Nope": ["x"]}}, ["mizan_hub.E007"]),
    ({"MODELS": {"testapp.Todo": [5]}}, ["mizan_hub.E007"]),
    ({"MODELS": {"testapp.Todo": ["unlisted"]}}, ["mizan_hub.W002"]),
    ({"TOKEN": {"ALGORITHM": "none"}}, ["mizan_hub.E008"]),
    ({"TOKEN": {"KEYS": {"v1": "k" * 40}, "KID": "v2"}}, ["mizan_hub.E008"]),
    ({"TOKEN": {"KEYS": {"v1": "short"}}}, ["mizan_hub.W001"]),
    ({"WORKER": {"COUNT": 0}}, ["mizan_hub.E009"]),
    ({"HUB_URL": "http://127.0.0.1:8765/"}, ["mizan_hub.E010"]),
    ({"REDIS_TIMEOUT": 0}, ["mizan_hub.E011"]),
], ids=lambda v: json.dumps(v, default=str)[:40] if isinstance(v, dict) else None)
@pytest.mark.django_db
def test_bad_settings_are_reported(changes, expected):
    assert ids(**changes) == expected


def test_a_non_dict_setting():
    with override_settings(MIZAN_HUB=[1]):
        assert [m.id for m in run_checks() if m.id.startswith("mizan_hub.")] == ["mizan_hub.E001"]


def test_registry_publish_stores_and_announces_it(r, events):
    """manage.py mizan_hub_registry --publish (issue 15): the document at
    {prefix}registry and a `registry` envelope with its version."""
    import hashlib

    from django.core.management import call_command

    call_command("mizan_hub_registry", "--publish")
    stored = r.get("mizan:registry")
    assert stored
    version = hashlib.sha256(stored if isinstance(stored, bytes) else stored.encode()).hexdigest()[:16]
    assert events.envelopes() == [{"v": 1, "kind": "registry", "version": version}]


# -- the registry published by `manage.py migrate` (PUBLISH_REGISTRY_ON_MIGRATE)

@pytest.mark.django_db(transaction=True)
def test_migrate_publishes_the_registry_when_asked(r, events):
    from mizan_hub.registry import registry_json

    call_command("migrate", verbosity=0)
    assert r.get("mizan:registry") is None and events.envelopes(timeout=0.3) == [], "off by default"
    out = io.StringIO()
    with hub(PUBLISH_REGISTRY_ON_MIGRATE=True):
        call_command("migrate", verbosity=1, stdout=out)
    stored = r.get("mizan:registry")
    assert stored == registry_json().encode()  # what mizan_hub_registry --publish stores
    [envelope] = events.envelopes()
    assert envelope["kind"] == "registry"
    assert f"registry version {envelope['version']} published" in out.getvalue()
    with hub(PUBLISH_REGISTRY_ON_MIGRATE=True, TEST_MODE=True):
        r.delete("mizan:registry")
        call_command("migrate", verbosity=0)
    assert r.get("mizan:registry") is None, "test mode leaves Redis alone"


@pytest.mark.django_db(transaction=True)
def test_migrate_without_redis_says_so_and_strict_fails_it(capsys):
    from mizan_hub import PublishError

    with hub(PUBLISH_REGISTRY_ON_MIGRATE=True, REDIS_URL="redis://127.0.0.1:9/0"):
        call_command("migrate", verbosity=0)
        assert "the registry was not published" in capsys.readouterr().err
        with hub(STRICT=True), pytest.raises(PublishError, match="mizan_hub_registry --publish"):
            call_command("migrate", verbosity=0)


def test_publish_registry_on_migrate_must_be_a_bool():
    with hub(PUBLISH_REGISTRY_ON_MIGRATE="yes"):
        assert "mizan_hub.E004" in [m.id for m in run_checks()]


@pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}")
@pytest.mark.django_db(transaction=True)
def test_migrate_updates_a_running_hub_that_reads_the_registry_from_redis(redis_url, r, tmp_path):
    """The whole path: settings change, `migrate`, and the real hub started
    with --registry-from-redis serves the new registry (its announcement)."""
    import hashlib
    import time
    import urllib.request

    from mizan_hub.registry import publish_registry, registry_json
    from tests.test_e2e_hub import Client

    def served(port):
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read().decode()

    first = publish_registry(registry_json())
    port = free_port()
    with running_hub(["--listen", f"127.0.0.1:{port}", "--redis", redis_url, "--allow-anonymous",
                      "--registry-from-redis", "--log-level", "warn", "--drain-window", "0"], port, tmp_path / "hub.log") as url:
        assert served(port) == f"ready\nregistry {first}\n"
        before = Client(url)
        before.send({"action": "subscribe", "context": "board", "ref": 1})
        assert before.recv()["error"]["code"] == "not_found"
        contexts = {**mizan_hub.conf.user_settings()["CONTEXTS"], "board": {"params": [], "guard": "public"}}
        with hub(PUBLISH_REGISTRY_ON_MIGRATE=True, CONTEXTS=contexts):
            call_command("migrate", verbosity=0)
            second = hashlib.sha256(registry_json().encode()).hexdigest()[:16]
        deadline = time.monotonic() + 5
        while served(port) != f"ready\nregistry {second}\n":
            assert time.monotonic() < deadline, f"the hub serves {served(port)!r}, not {second}"
            time.sleep(0.05)
        Client(url).subscribe(context="board")
