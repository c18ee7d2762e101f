"""mizan_hub.presence() (SPEC 11.2) against the real hub: the members the
hubs keep in Redis, with the ``info`` Django put in the connection token,
without members of a hub process whose heartbeat is gone. Also the registry
export and the token's ``info``.

Skipped when the hub binary is not built (MIZAN_HUB_BIN names another one).
"""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings

import mizan_hub
from mizan_hub import protocol
from tests.conftest import HUB, free_port, running_hub

websocket = pytest.importorskip("websocket")

KEY = settings.MIZAN_HUB["TOKEN"]["KEYS"]["v1"]
ROOM = {"room": "lobby"}
CHANNELS = {**settings.MIZAN_HUB["CHANNELS"],
            "room": {"params": ["room"], "guard": "auth", "presence": True}}


def with_presence():
    return override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "CHANNELS": CHANNELS})


def test_the_registry_says_which_channels_keep_presence():
    with with_presence():
        registry = mizan_hub.build_registry()
    assert registry["channels"]["room"] == {"params": ["room"], "guard": "auth",
                                            "presence": True}
    assert "presence" not in registry["channels"]["chat"]


def test_a_room_can_keep_members_without_join_leave_frames():
    channels = {**CHANNELS, "hall": {"params": ["room"], "guard": "auth", "presence": True,
                                     "join_leave": False}}
    with override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "CHANNELS": channels}):
        registry = mizan_hub.build_registry()
    assert registry["channels"]["hall"] == {"params": ["room"], "guard": "auth",
                                            "presence": True, "join_leave": False}
    assert "join_leave" not in registry["channels"]["room"]  # the default: events on


def test_info_goes_into_the_connection_token(db):
    user = User.objects.create(username="ada")
    token, _ = mizan_hub.connection_token(user, info={"name": "Ada"})
    assert jwt.decode(token, options={"verify_signature": False})["info"] == {"name": "Ada"}
    token, _ = mizan_hub.connection_token(user)
    assert "info" not in jwt.decode(token, options={"verify_signature": False})
    for bad in (None, "x" * 1023):
        with pytest.raises(ValueError, match="1024 bytes"):
            mizan_hub.connection_token(user, info=bad)


@pytest.fixture
def hub(redis_url, r, tmp_path):
    registry = tmp_path / "registry.json"
    with with_presence():
        registry.write_text(json.dumps(mizan_hub.build_registry()))
    port = free_port()
    with running_hub(["--listen", f"127.0.0.1:{port}", "--redis", redis_url,
                      "--registry", str(registry), "--jwt-secret", KEY, "--jwt-kid", "v1",
                      "--jwt-audience", "mizan", "--presence-heartbeat-ms", "200",
                      "--log-level", "warn", "--drain-window", "0",
                      "--canary-interval-ms", "50"], port, tmp_path / "hub.log") as url:
        yield url


def connect(url, user, **kw):
    token, _ = mizan_hub.connection_token(user, **kw)
    ws = websocket.create_connection(url, timeout=3, header=[f"Authorization: Bearer {token}"])
    conn = json.loads(ws.recv())["welcome"]["conn"]
    ws.send(json.dumps({"action": "subscribe", "channel": "room", "params": ROOM}))
    assert json.loads(ws.recv()).get("subscribed") is True
    return ws, conn


async def _apresence():
    from mizan_hub.connection import aclose_async_redis
    try:
        return await mizan_hub.apresence("room", room="lobby")
    finally:
        await aclose_async_redis()


def wait_for(fn, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} not reached within {timeout} s (last: {value!r})")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}")
def test_presence_reads_what_the_hubs_keep(hub, r):
    ada = User.objects.create(username="ada")
    bob = User.objects.create(username="bob")
    ws_ada, conn_ada = connect(hub, ada, info={"name": "Ada"})
    ws_bob, conn_bob = connect(hub, bob)
    # A member of a process that has no heartbeat (a hub that died) is not listed.
    key = protocol.canonical_key("room", ROOM)
    r.hset(f"mizan:p:{key}", "dead.0badf00d-1",
           json.dumps({"conn": "dead.0badf00d-1", "sub": "9"}))
    r.sadd("mizan:procs", "dead.0badf00d-")
    with with_presence():
        both = [{"conn": conn_ada, "sub": str(ada.pk), "info": {"name": "Ada"}},
                {"conn": conn_bob, "sub": str(bob.pk)}]
        got = wait_for(lambda: sorted(mizan_hub.presence("room", room="lobby"),
                                      key=lambda m: m["conn"]) == sorted(both, key=lambda m: m["conn"]),
                       "both members listed")
        assert got
        assert mizan_hub.presence("room", room="elsewhere") == []
        assert sorted(asyncio.run(_apresence()), key=lambda m: m["conn"]) == sorted(
            both, key=lambda m: m["conn"])
        ws_bob.close()
        wait_for(lambda: mizan_hub.presence("room", room="lobby") == both[:1], "bob gone")
    ws_ada.close()


def test_presence_in_test_mode_is_empty_without_redis():
    with override_settings(MIZAN_HUB={**settings.MIZAN_HUB, "CHANNELS": CHANNELS,
                                      "TEST_MODE": True, "REDIS_URL": "redis://127.0.0.1:9/0"}):
        assert mizan_hub.presence("room", room="lobby") == []
