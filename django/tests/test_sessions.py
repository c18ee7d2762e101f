"""The session registry follows login and logout (SPEC section 12)."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

import mizan_hub
from mizan_hub import stats
from mizan_hub.sessions import SID_KEY

pytestmark = pytest.mark.django_db(transaction=True)

ENGINES = ["django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cache",
           "django.contrib.sessions.backends.cached_db"]


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def user(db):
    return User.objects.create_user("ann", password="pw", is_staff=True)


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.rsplit(".", 1)[1])
def test_entry_appears_on_login_and_vanishes_on_logout(engine, client, user, r, events):
    with override_settings(SESSION_ENGINE=engine):
        assert client.login(username="ann", password="pw")
        session_key = client.cookies["sessionid"].value
        name = f"mizan:sess:{sha(session_key)}"
        assert json.loads(r.get(name)) == {"sub": str(user.pk), "staff": True, "super": False}
        ttl = r.ttl(name)
        assert 14 * 24 * 3600 - 5 < ttl <= 14 * 24 * 3600  # SESSION_COOKIE_AGE
        client.logout()
        assert not r.exists(name)
        assert events.envelopes() == [{"v": 1, "kind": "logout", "session": sha(session_key)}]


def test_signed_cookie_sessions_are_keyed_by_a_random_id(client, user, r, events):
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        assert client.login(username="ann", password="pw")
        sid = client.session[SID_KEY]  # inside the signed cookie, which the hub verifies
        assert len(sid) >= 32
        name = f"mizan:sess:{sha('s:' + sid)}"  # signed sessions have their own key space
        assert json.loads(r.get(name))["sub"] == str(user.pk)
        assert r.keys("mizan:sess:*") == [name.encode()]
        client.logout()
        assert not r.exists(name)
        assert events.envelopes() == [{"v": 1, "kind": "logout", "session": sha("s:" + sid)}]


def test_a_rotated_session_key_moves_the_entry(client, user, r, events):
    assert client.login(username="ann", password="pw")
    old = client.cookies["sessionid"].value
    assert client.post("/change-password/").content == b"changed"
    new = client.cookies["sessionid"].value
    assert new != old
    assert not r.exists(f"mizan:sess:{sha(old)}")
    assert json.loads(r.get(f"mizan:sess:{sha(new)}"))["sub"] == str(user.pk)
    assert events.envelopes() == [{"v": 1, "kind": "logout", "session": sha(old)}]


def test_a_saved_session_extends_its_entry(client, user, r):
    assert client.login(username="ann", password="pw")
    name = f"mizan:sess:{sha(client.cookies['sessionid'].value)}"
    r.expire(name, 100)
    client.get("/plain/")  # session not modified: not saved, expiry unchanged
    assert r.ttl(name) <= 100
    client.get("/touch-session/")
    assert r.ttl(name) > 14 * 24 * 3600 - 5


def test_registry_off(client, user, r):
    with override_settings(MIZAN_HUB={**mizan_hub.conf.user_settings(), "SESSIONS": False}):
        client.login(username="ann", password="pw")
        assert r.keys("mizan:sess:*") == []


def test_redis_down_does_not_break_login(client, user, r):
    down = {**mizan_hub.conf.user_settings(), "REDIS_URL": "redis://127.0.0.1:9/0"}
    with override_settings(MIZAN_HUB=down):
        assert client.login(username="ann", password="pw")
        client.logout()
    assert stats.get("session_failures") == 2
