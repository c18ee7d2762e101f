"""The system checks for the mistakes a team adopting mizan-hub makes: the
middleware missing or before the session and auth middleware, token views
mounted with no key (E008), a registry that refuses everything, the hub's
own settings in MIZAN_HUB['HUB'], and the deploy checks of
``check --deploy``."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings

import mizan_hub

SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
HUB_MW = "mizan_hub.middleware.MizanHubMiddleware"


def ids(deploy=False, **changes):
    with override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(), **changes}):
        messages = run_checks(include_deployment_checks=deploy)
    return sorted({m.id for m in messages if m.id.startswith("mizan_hub.")})


@pytest.mark.parametrize("middleware, expected", [
    ([SESSION, AUTH, HUB_MW], []),
    ([SESSION, AUTH], ["mizan_hub.W003"]),
    ([HUB_MW, SESSION, AUTH], ["mizan_hub.E014"]),
    ([SESSION, HUB_MW, AUTH], ["mizan_hub.E014"]),
])
def test_the_middleware_is_there_and_after_session_and_auth(middleware, expected):
    with override_settings(MIDDLEWARE=middleware):
        assert ids() == expected


def test_no_token_key_while_token_views_are_mounted_is_e008():
    # tests/urls.py mounts mizan_hub.urls; the test settings give a key.
    assert ids() == []
    no_key = {**settings.MIZAN_HUB["TOKEN"], "KEYS": None}
    assert ids(TOKEN=no_key) == ["mizan_hub.E008"]
    with override_settings(IZANA_MWT_SECRET="izana-secret-0123456789abcdef0123456789"):
        assert ids(TOKEN=no_key) == [], "izana's MWT secret is the key"


def test_no_token_key_with_a_token_guard_and_no_views_is_e008():
    no_key = {**settings.MIZAN_HUB["TOKEN"], "KEYS": None}
    with override_settings(ROOT_URLCONF="tests.urls_without_hub"):
        # the test settings' "billing" context has guard "token"
        assert ids(TOKEN=no_key) == ["mizan_hub.E008"]
        contexts = {k: v for k, v in settings.MIZAN_HUB["CONTEXTS"].items() if k != "billing"}
        assert ids(TOKEN=no_key, CONTEXTS=contexts) == []


def test_a_registry_that_refuses_everything_is_w004():
    assert ids(CONTEXTS={}, CHANNELS={}, MODELS={}, IZANA={"ENABLED": False}) == ["mizan_hub.W004"]
    assert ids(CONTEXTS={}, CHANNELS={}, MODELS={}, IZANA={"ENABLED": False},
               DEFAULT="allow") == []
    assert ids(CONTEXTS={}, CHANNELS={"c": {}}, MODELS={}, IZANA={"ENABLED": False}) == []


@pytest.mark.parametrize("hub, expected", [
    ({"listen": "0.0.0.0:8765", "workers": 2}, []),
    ({"prefix": "x:"}, ["mizan_hub.E012"]),          # the hub's flag is redis_prefix...
    ({"redis_prefix": "x:"}, ["mizan_hub.E012"]),    # ...and Django's PREFIX decides it
    ({"jwt_secret": "x" * 40}, ["mizan_hub.E012"]),
    ("listen=1", ["mizan_hub.E012"]),
])
def test_hub_settings(hub, expected):
    assert ids(HUB=hub) == expected


@pytest.mark.parametrize("origins, expected", [
    (None, []),
    (["https://app.example.com", "http://localhost:8000", "https://*.example.com"], []),
    (["app.example.com"], ["mizan_hub.E013"]),
    ("https://app.example.com", ["mizan_hub.E013"]),
    (["https://a.example.com/path"], ["mizan_hub.E013"]),
])
def test_allowed_origins(origins, expected):
    assert ids(ALLOWED_ORIGINS=origins) == expected


@override_settings(ALLOWED_HOSTS=["app.example.com"])
def test_deploy_checks():
    assert ids(deploy=True) == []
    assert ids(deploy=False, DEFAULT="allow") == [], "not without --deploy"
    assert ids(deploy=True, DEFAULT="allow") == ["mizan_hub.W005"]
    with override_settings(ALLOWED_HOSTS=["*"], CSRF_TRUSTED_ORIGINS=[]):
        assert ids(deploy=True) == ["mizan_hub.W006"]
        assert ids(deploy=True, ALLOWED_ORIGINS=["https://app.example.com"]) == []
    assert ids(deploy=True, HUB={"allow_anonymous": True}) == ["mizan_hub.W007"]
    assert ids(deploy=True, HUB={"allow_anonymous": "false"}) == []


def test_the_prefix_hint_names_the_hubs_flag():
    with override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(), "PREFIX": ""}):
        [error] = [m for m in run_checks() if m.id == "mizan_hub.E003"]
    assert "--redis-prefix" in error.hint
