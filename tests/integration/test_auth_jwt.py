"""Connection tokens (issue 5, first slice): JWT/MWT from the upgrade headers
or the first `auth` frame, `refresh`, and live expiry with `expiring` + 4004.
Tokens are minted here with PyJWT, the way the Django app mints MWTs."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import jwt
import pytest

from hubtest import connect, run

SECRET = "0123456789abcdef0123456789abcdef-hub-test"


def token(sub="5", exp_in=300, secret=SECRET, kid="v1", **claims) -> str:
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "nbf": now, "exp": now + exp_in, "aud": "mizan",
               "staff": False, "super": False, **claims}
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})


@pytest.fixture
def auth_hub(make_hub, redis_server):
    # No --allow-anonymous: only verified identities may subscribe.
    return make_hub(redis_server, allow_anonymous="false", jwt_secret=SECRET, jwt_audience="mizan",
                    expiry_warning="2")


async def _recv(c, timeout=5):
    return json.loads(await asyncio.wait_for(c.ws.recv(), timeout))


def test_token_in_headers_gives_identity(auth_hub):
    async def main():
        for header in ("Authorization", "X-Mizan-Token"):
            value = ("Bearer " if header == "Authorization" else "") + token(sub="5", staff=True)
            c = await connect(auth_hub, additional_headers={header: value})
            w = c.welcome["welcome"]
            assert w["identity"] == {"sub": "5", "staff": True, "super": False}, header
            assert isinstance(w["expires"], int) and w["expires"] > time.time()
            await c.ws.send(json.dumps({"action": "subscribe", "context": "user",
                                        "params": {"user_id": 5}}))
            assert (await _recv(c)).get("subscribed") is True
            await c.ws.close()
    run(main())


@pytest.mark.parametrize("bad", [
    token(secret="another-secret-of-the-right-length-xx"),   # bad signature
    token(exp_in=-120),                                      # expired
    token(kid="nope"),                                       # unknown kid
    token(aud="other"),                                      # wrong audience
    "not.a.token",
])
def test_bad_token_on_upgrade_is_401(auth_hub, bad):
    # A raw upgrade: lws answers refusals with an HTTP/1.0 status line, which
    # browsers accept and the Python websockets client does not parse.
    with socket.create_connection(("127.0.0.1", auth_hub.port), timeout=5) as s:
        s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Authorization: Bearer {bad}\r\n\r\n").encode())
        status = s.recv(4096).split(b"\r\n", 1)[0].decode()
    assert status.split()[1] == "401", status
    assert auth_hub.metric("mizan_hub_connections_rejected_total") >= 1


def test_query_token_only_with_token_query(make_hub, redis_server):
    """?token= on the upgrade (--token-query): read from the head by the
    intake on a plain socket, and from lws's copy over TLS (where lws points
    after the name); without the option the query is not looked at."""
    import ssl
    from pathlib import Path
    data = Path(__file__).parent / "data"
    auth = dict(allow_anonymous="false", jwt_secret=SECRET, jwt_audience="mizan")
    off = make_hub(redis_server, **auth)
    plain = make_hub(redis_server, token_query="true", **auth)
    tls = make_hub(redis_server, token_query="true", wait_ready=False,
                   tls_cert=str(data / "test-cert.pem"), tls_key=str(data / "test-key.pem"),
                   **auth)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test certificate is self-signed
    path = "/?token=" + token(sub="5", staff=True)

    async def main():
        c = await connect(off, path)
        assert c.welcome["welcome"]["identity"] is None
        await c.ws.close()
        for hub, kw in ((plain, {}), (f"wss://127.0.0.1:{tls.port}/", {"ssl": ctx})):
            c = await connect(hub, path, **kw)
            assert c.welcome["welcome"]["identity"] == {"sub": "5", "staff": True,
                                                        "super": False}, hub
            await c.ws.close()
    run(main())


def test_anonymous_must_authenticate_with_a_frame(auth_hub):
    async def main():
        c = await connect(auth_hub)
        assert c.welcome["welcome"]["identity"] is None
        await c.ws.send(json.dumps({"action": "subscribe", "context": "user", "ref": 1}))
        f = await _recv(c)
        assert f["error"]["code"] == "unauthorized" and f["ref"] == 1
        await c.ws.send(json.dumps({"action": "auth", "token": token(sub="7"), "ref": 2}))
        f = await _recv(c)
        assert f["authed"]["identity"]["sub"] == "7" and f["authed"]["ref"] == 2
        await c.ws.send(json.dumps({"action": "subscribe", "context": "user", "ref": 3}))
        assert (await _recv(c)).get("subscribed") is True
        await c.ws.close()
    run(main())


def test_auth_frame_with_bad_token_closes_4001(auth_hub):
    async def main():
        c = await connect(auth_hub)
        await c.ws.send(json.dumps({"action": "auth", "token": token(exp_in=-120)}))
        f = await _recv(c)
        assert f["error"]["code"] == "token_expired"
        with pytest.raises(Exception):
            await asyncio.wait_for(c.ws.recv(), 5)
        assert c.ws.close_code == 4001
    run(main())


def test_expiry_warns_then_closes_4004_unless_refreshed(auth_hub):
    async def main():
        doomed = await connect(auth_hub, additional_headers={"Authorization": "Bearer " + token(exp_in=3)})
        kept = await connect(auth_hub, additional_headers={"Authorization": "Bearer " + token(exp_in=3)})
        f = await _recv(kept, 5)
        assert f["expiring"]["in"] <= 2
        await kept.ws.send(json.dumps({"action": "refresh", "token": token(exp_in=300), "ref": "r"}))
        f = await _recv(kept, 5)
        assert f["authed"]["ref"] == "r" and f["authed"]["expires"] > time.time() + 200
        assert "expiring" in await _recv(doomed, 5)
        with pytest.raises(Exception):
            await asyncio.wait_for(doomed.ws.recv(), 8)
        assert doomed.ws.close_code == 4004
        await kept.ws.send(json.dumps({"action": "ping"}))
        assert await _recv(kept, 5) == {"pong": True}
        await kept.ws.close()
    run(main())


def test_refresh_for_another_sub_is_refused(auth_hub):
    async def main():
        c = await connect(auth_hub, additional_headers={"Authorization": "Bearer " + token(sub="5")})
        await c.ws.send(json.dumps({"action": "refresh", "token": token(sub="6")}))
        assert (await _recv(c))["error"]["code"] == "forbidden"
        await c.ws.close()
    run(main())


def _upgrade_status(hub, tok: str) -> str:
    with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as s:
        s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Authorization: Bearer {tok}\r\n\r\n").encode())
        return s.recv(4096).split(b"\r\n", 1)[0].decode()


def test_a_remembered_token_gives_the_same_identity_until_it_expires(make_hub, redis_server):
    """--jwt-cache: a token seen again is answered from the cache of verified
    tokens (counted), with the identity the check gave, and only until its
    exp: after that the same token is refused as expired, not remembered."""
    hub = make_hub(redis_server, allow_anonymous="false", jwt_secret=SECRET,
                   jwt_audience="mizan", jwt_leeway="0")
    tok = token(sub="7", exp_in=3, staff=True, info={"name": "Ann"})

    async def identity():
        c = await connect(hub, additional_headers={"Authorization": "Bearer " + tok})
        w = c.welcome["welcome"]
        await c.ws.close()
        return w["identity"], w["expires"]

    first = run(identity())
    assert hub.metric("mizan_hub_jwt_remembered_total") == 0
    again = run(identity())
    assert again == first and first[0]["sub"] == "7" and first[0]["staff"] is True
    assert hub.metric("mizan_hub_jwt_remembered_total") == 1
    # a refused token is never remembered: refused each time, counted as refused
    bad = token(secret="another-secret-of-the-right-length-xx")
    assert _upgrade_status(hub, bad).split()[1] == "401"
    assert _upgrade_status(hub, bad).split()[1] == "401"
    assert hub.metric("mizan_hub_jwt_remembered_total") == 1
    # past its exp the remembered token is refused like any expired one
    while time.time() < first[1] + 0.2:
        time.sleep(0.1)
    assert _upgrade_status(hub, tok).split()[1] == "401"
    assert hub.metric("mizan_hub_jwt_remembered_total") == 1


def test_without_the_cache_every_token_is_checked(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous="false", jwt_secret=SECRET,
                   jwt_audience="mizan", jwt_cache="0")
    tok = token(sub="8")

    async def once():
        c = await connect(hub, additional_headers={"Authorization": "Bearer " + tok})
        assert c.welcome["welcome"]["identity"]["sub"] == "8"
        await c.ws.close()

    run(once())
    run(once())
    assert hub.metric("mizan_hub_jwt_remembered_total") == 0
