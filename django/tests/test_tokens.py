"""Connection tokens (MWT) and subscription tokens, and their views."""

from __future__ import annotations

import time

import jwt
import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings

import mizan_hub
from mizan_hub import tokens

pytestmark = pytest.mark.django_db

KEY = "tests-token-key-0123456789abcdef0123456789"


@pytest.fixture
def user(db):
    return User.objects.create_user("bob", password="pw", is_superuser=True)


def settings_with(**token):
    base = mizan_hub.conf.user_settings()
    return override_settings(MIZAN_HUB={**base, "TOKEN": {**base["TOKEN"], **token}})


@pytest.mark.parametrize("use_izana", [False, "auto"])
def test_connection_token_claims(user, use_izana):
    if use_izana == "auto":
        pytest.importorskip("izana_core.mwt")
    with settings_with(USE_IZANA=use_izana):
        token, expires = mizan_hub.connection_token(user)
    now = time.time()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "v1", "typ": "JWT"}
    claims = jwt.decode(token, KEY, algorithms=["HS256"], audience="mizan")
    assert claims["sub"] == str(user.pk) and claims["staff"] is False and claims["super"] is True
    assert claims["exp"] == expires and abs(claims["exp"] - now - 300) <= 2
    assert claims["iat"] == claims["nbf"] == claims["exp"] - 300
    assert claims["pkey"] == tokens.permission_key(user)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, KEY, algorithms=["HS256"], audience="izana")


def test_tokens_are_read_by_izana_decode_mwt(user):
    mwt = pytest.importorskip("izana_core.mwt")
    with settings_with(USE_IZANA=False):
        token, _ = mizan_hub.connection_token(user)
    payload = mwt.decode_mwt(token, KEY, audience="mizan")
    assert (payload.sub, payload.staff, payload.super, payload.kid) == (str(user.pk), False, True, "v1")
    assert payload.pkey == mwt.compute_permission_key(user)
    # and the other way round: izana's own MWT decodes with our settings
    izana_token = mwt.create_mwt(user, KEY, audience="mizan", kid="v1")
    assert tokens.decode(izana_token, audience="mizan")["sub"] == str(user.pk)


def test_permission_key_follows_permissions(user):
    staff = User.objects.create_user("carl")
    before = tokens.permission_key(staff)
    staff.user_permissions.add(Permission.objects.get(codename="add_user"))
    staff = User.objects.get(pk=staff.pk)
    assert tokens.permission_key(staff) != before


def test_other_algorithms_and_lifetime(user):
    with settings_with(KEYS={"k2": "x" * 64}, KID="k2", ALGORITHM="HS512", LIFETIME=60):
        token, expires = mizan_hub.connection_token(user)
        assert jwt.get_unverified_header(token)["alg"] == "HS512"
        assert tokens.decode(token, audience="mizan")["exp"] == expires
        assert abs(expires - time.time() - 60) <= 2


def test_subscription_token(user):
    token, expires = mizan_hub.subscription_token("context", "billing", {"org": 7, "on": True},
                                                  user=user)
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims == {"scope": "context", "name": "billing", "params": {"org": "7", "on": "true"},
                      "sub": str(user.pk), "iat": claims["iat"], "exp": expires}
    assert abs(expires - time.time() - 60) <= 2
    assert "aud" not in claims
    anonymous, _ = mizan_hub.subscription_token("channel", "chat", {})
    assert "sub" not in jwt.decode(anonymous, KEY, algorithms=["HS256"])


def test_token_view(client, user):
    response = client.get("/hub/token/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    client.force_login(user)
    response = client.get("/hub/token/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert tokens.decode(body["token"], audience="mizan")["exp"] == body["expires"]
    assert client.post("/hub/token/").status_code == 405


def test_token_view_without_keys(client, user):
    client.force_login(user)
    with settings_with(KEYS=None):
        response = client.get("/hub/token/")
    assert response.status_code == 503


def test_subscription_token_view(client, user):
    import tests.hub_handlers  # noqa: F401  registers the billing guard
    assert client.get("/hub/subscription-token/context/billing/?org=7").status_code == 403
    client.force_login(user)
    response = client.get("/hub/subscription-token/context/billing/?org=7")
    assert response.status_code == 200
    claims = tokens.decode(response.json()["token"])
    assert (claims["scope"], claims["name"], claims["params"], claims["sub"]) == (
        "context", "billing", {"org": "7"}, str(user.pk))
    assert client.get("/hub/subscription-token/context/billing/?org=8").status_code == 403
    assert client.get("/hub/subscription-token/context/nothing/").status_code == 404
    assert client.get("/hub/subscription-token/other/billing/").status_code == 404
