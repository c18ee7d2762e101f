"""Issue 5: hostile credentials and subscriptions against the running hub,
table-driven, each case asserting the exact rejection (HTTP status before
the upgrade, error code, close code) and that /metrics counted it under its
stage and reason; then the happy paths. Cookies and tokens come from real
Django (djsite.py) and PyJWT, not from hand-written fixtures."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import djsite
from hubtest import SLOW, Hub, RedisServer, connect, run

SECRET = djsite.HUB_JWT_SECRET
AUD = "mizan"

_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PRIVATE = _rsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
RSA_PUBLIC = _rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

REGISTRY = {
    "version": 1,
    "default": "deny",
    "contexts": {
        "user": {"params": ["user_id"], "guard": "auth", "param_rules": {"user_id": "sub"}},
        "notifications": {"params": [], "guard": "auth"},
        "todos": {"params": [], "guard": "public"},
        "admin_stats": {"params": [], "guard": "staff"},
        "su_panel": {"params": [], "guard": "superuser"},
        "billing": {"params": ["org"], "guard": "token"},
    },
    "channels": {
        "chat": {"params": ["room"], "guard": "auth"},
        "announcements": {"params": [], "guard": "public"},
        "vip": {"params": ["room"], "guard": "token"},
    },
}

ORIGINS = "https://app.test, https://*.trusted.test"
# Every token handed to the hub, to check none reaches its log.
SEEN_TOKENS: list[str] = []


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def tok(sub="5", exp_in=300, secret=SECRET, kid="v1", alg="HS256", headers=None, drop=(),
        **claims) -> str:
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "nbf": now, "exp": now + exp_in, "aud": AUD,
               "staff": False, "super": False, **claims}
    for k in drop:
        payload.pop(k, None)
    t = jwt.encode(payload, secret, algorithm=alg, headers={"kid": kid, **(headers or {})})
    SEEN_TOKENS.append(t)
    return t


def sub_tok(scope, name, params, sub="5", exp_in=60, secret=SECRET) -> str:
    now = int(time.time())
    claims = {"scope": scope, "name": name, "params": params, "iat": now, "exp": now + exp_in}
    if sub is not None:
        claims["sub"] = sub
    t = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "v1"})
    SEEN_TOKENS.append(t)
    return t


def alg_none() -> str:
    now = int(time.time())
    return _b64({"alg": "none", "kid": "v1"}) + "." + _b64(
        {"sub": "5", "exp": now + 300, "aud": AUD}) + "."


def alg_confusion() -> str:
    # HS256 "signed" with the RSA public key as the HMAC secret, naming the RSA kid.
    now = int(time.time())
    head = _b64({"alg": "HS256", "kid": "rs1", "typ": "JWT"})
    body = _b64({"sub": "5", "exp": now + 300, "aud": AUD})
    import hashlib
    import hmac
    sig = hmac.new(RSA_PUBLIC, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def raw_upgrade(port: int, headers: dict[str, str]) -> int:
    """The HTTP status the hub answers an upgrade with (101 or a refusal)."""
    lines = [f"GET / HTTP/1.1", "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b"\r\n", 1)[0].split()[1])


# ---------------------------------------------------------------- the hub under attack


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    redis_server = RedisServer(d / "redis")
    redis_server.start()
    (d / "registry.json").write_text(json.dumps(REGISTRY))
    (d / "jwks.json").write_text(json.dumps({"keys": [
        {"kty": "oct", "kid": "v1", "alg": "HS256",
         "k": base64.urlsafe_b64encode(SECRET.encode()).rstrip(b"=").decode()},
        {"kty": "RSA", "kid": "rs1", "alg": "RS256", "pem": RSA_PUBLIC.decode()},
    ]}))
    (d / "django-keys").write_text(f"{djsite.SECRET_KEY}\n{djsite.FALLBACK_KEY}\n")
    hub = Hub(d / "hub", redis_server.url, jwt_keys=d / "jwks.json", jwt_audience=AUD,
              registry=d / "registry.json", django_secret_keys_file=d / "django-keys",
              allowed_origins=ORIGINS, session_max_age=3600, log_level="debug")
    hub.start()
    yield {"hub": hub, "redis": redis_server, "dir": d}
    hub.stop()
    report = hub.sanitizer_report()
    redis_server.kill()
    assert report is None, report
    log = hub.stderr_text()
    leaked = [t for t in SEEN_TOKENS if t in log]
    assert not leaked, "a token reached the hub's log"


def rejections(hub: Hub, stage: str, reason: str) -> float:
    v = hub.metrics().get(f'mizan_hub_rejections_total{{stage="{stage}",reason="{reason}"}}', 0.0)
    return v


# ---- 1. tokens on the upgrade: HTTP 401 before the 101, counted by reason

UPGRADE_TOKENS = [
    ("expired", lambda: tok(exp_in=-120), "expired"),
    ("not_yet_valid", lambda: tok(nbf=int(time.time()) + 600), "not_yet_valid"),
    ("issued_in_future", lambda: tok(iat=int(time.time()) + 600), "issued_in_future"),
    ("wrong_audience", lambda: tok(aud="another-app"), "wrong_audience"),
    ("bad_signature", lambda: tok(secret="not-the-secret-" + "z" * 32), "bad_signature"),
    ("alg_none", alg_none, "alg_none"),
    ("alg_confusion_hs_with_rsa_key", alg_confusion, "alg_mismatch"),
    ("unknown_kid", lambda: tok(kid="v9"), "unknown_kid"),
    ("truncated", lambda: tok()[:-20], "bad_signature"),
    ("two_segments", lambda: ".".join(tok().split(".")[:2]), "malformed"),
    ("garbage", lambda: "%%%garbage%%%", "malformed"),
    ("empty_signature", lambda: tok().rsplit(".", 1)[0] + ".", "bad_signature"),
    ("missing_exp", lambda: tok(drop=("exp",)), "missing_exp"),
    ("missing_sub", lambda: tok(drop=("sub",)), "missing_sub"),
    ("subscription_token_as_connection_token",
     lambda: sub_tok("context", "billing", {"org": "1"}) , "wrong_audience"),
    ("rs256_signed_by_another_key",
     lambda: jwt.encode({"sub": "5", "exp": int(time.time()) + 300, "aud": AUD},
                        rsa.generate_private_key(public_exponent=65537, key_size=2048),
                        algorithm="RS256", headers={"kid": "rs1"}), "bad_signature"),
]


@pytest.mark.parametrize("case", UPGRADE_TOKENS, ids=[c[0] for c in UPGRADE_TOKENS])
@pytest.mark.parametrize("header", ["Authorization", "X-Mizan-Token"])
def test_bad_upgrade_token_is_http_401(env, case, header):
    _, make, reason = case
    hub = env["hub"]
    before = rejections(hub, "upgrade", reason)
    t = make()
    SEEN_TOKENS.append(t)
    value = ("Bearer " + t) if header == "Authorization" else t
    assert raw_upgrade(hub.port, {header: value}) == 401
    assert rejections(hub, "upgrade", reason) == before + 1


# ---- 2. tokens in frames: error frame, and 4001 when the first auth fails

def test_auth_frame_with_expired_token_closes_4001(env):
    async def main():
        c = await connect(env["hub"])
        await c.send({"action": "auth", "token": tok(exp_in=-120), "ref": 1})
        f = await c.recv()
        assert f["error"]["code"] == "token_expired" and f["ref"] == 1
        assert (await c.wait_closed(5 * SLOW))[0] == 4001
    run(main())


def test_auth_frame_with_garbage_closes_4001(env):
    async def main():
        before = rejections(env["hub"], "auth", "malformed")
        c = await connect(env["hub"])
        await c.send({"action": "auth", "token": "garbage.garbage.garbage"})
        assert (await c.recv())["error"]["code"] == "bad_token"
        assert (await c.wait_closed(5 * SLOW))[0] == 4001
        assert rejections(env["hub"], "auth", "malformed") == before + 1
    run(main())


def test_refresh_for_another_user_is_forbidden_and_keeps_the_connection(env):
    async def main():
        c = await connect(env["hub"], additional_headers={"Authorization": "Bearer " + tok(sub="5")})
        await c.send({"action": "refresh", "token": tok(sub="6"), "ref": 2})
        assert (await c.recv())["error"]["code"] == "forbidden"
        assert await c.ping_barrier() == []
        await c.close()
    run(main())


# ---- 3. the registry's guards and param rules

ANON = None
USER5 = {"sub": "5"}
STAFF5 = {"sub": "5", "staff": True}
SUPER5 = {"sub": "5", "super": True}

GUARD_CASES = [
    # id, who, frame, expected code (None: allowed)
    ("user5_on_user6", USER5, {"action": "subscribe", "context": "user", "params": {"user_id": 6}},
     "forbidden"),
    ("staff_on_another_users_scope", STAFF5,
     {"action": "subscribe", "context": "user", "params": {"user_id": "6"}}, "forbidden"),
    ("user5_without_the_ruled_param", USER5, {"action": "subscribe", "context": "user"},
     "forbidden"),
    ("anonymous_on_param_rule", ANON,
     {"action": "subscribe", "context": "user", "params": {"user_id": 5}}, "unauthorized"),
    ("anonymous_on_auth_context", ANON, {"action": "subscribe", "context": "notifications"},
     "unauthorized"),
    ("non_staff_on_staff", USER5, {"action": "subscribe", "context": "admin_stats"}, "forbidden"),
    ("staff_on_superuser", STAFF5, {"action": "subscribe", "context": "su_panel"}, "forbidden"),
    ("anonymous_on_staff", ANON, {"action": "subscribe", "context": "admin_stats"},
     "unauthorized"),
    ("unknown_context", USER5, {"action": "subscribe", "context": "secret_ctx"}, "not_found"),
    ("unknown_channel", USER5, {"action": "subscribe", "channel": "backroom"}, "not_found"),
    ("anonymous_on_auth_channel", ANON,
     {"action": "subscribe", "channel": "chat", "params": {"room": "x"}}, "unauthorized"),
    ("anonymous_message_on_auth_channel", ANON,
     {"action": "message", "channel": "chat", "params": {"room": "x"}, "data": 1},
     "unauthorized"),
    ("message_on_unknown_channel", USER5,
     {"action": "message", "channel": "backroom", "data": 1}, "not_found"),
    ("token_guard_without_token", USER5,
     {"action": "subscribe", "context": "billing", "params": {"org": "1"}}, "forbidden"),
    ("message_on_token_channel_unsubscribed", USER5,
     {"action": "message", "channel": "vip", "params": {"room": "a"}, "data": 1}, "forbidden"),
    # allowed ones, so the table cannot pass by refusing everything
    ("user5_on_user5", USER5, {"action": "subscribe", "context": "user", "params": {"user_id": 5}},
     None),
    ("anonymous_on_public", ANON, {"action": "subscribe", "context": "todos"}, None),
    ("staff_on_staff", STAFF5, {"action": "subscribe", "context": "admin_stats"}, None),
    ("superuser_on_staff", SUPER5, {"action": "subscribe", "context": "admin_stats"}, None),
    ("superuser_on_superuser", SUPER5, {"action": "subscribe", "context": "su_panel"}, None),
    ("anonymous_on_public_channel", ANON, {"action": "subscribe", "channel": "announcements"},
     None),
]


def headers_for(who) -> dict:
    if who is None:
        return {}
    return {"Authorization": "Bearer " + tok(sub=who["sub"], staff=who.get("staff", False),
                                             super=who.get("super", False))}


@pytest.mark.parametrize("case", GUARD_CASES, ids=[c[0] for c in GUARD_CASES])
def test_registry_guard(env, case):
    _, who, frame, code = case
    hub = env["hub"]
    stage = "message" if frame["action"] == "message" else "subscribe"

    async def main():
        before = rejections(hub, stage, code) if code else 0
        c = await connect(hub, additional_headers=headers_for(who))
        await c.send(dict(frame, ref="g"))
        if frame["action"] == "message" and code is None:
            assert await c.ping_barrier() == []
        else:
            f = await c.recv()
            if code is None:
                assert f.get("subscribed") is True and f["ref"] == "g", f
            else:
                assert f["error"]["code"] == code and f["ref"] == "g", f
                assert rejections(hub, stage, code) == before + 1
        await c.close()
    run(main())


# ---- 4. subscription tokens (the `token` guard)

SUB_TOKEN_CASES = [
    ("other_params", lambda: sub_tok("context", "billing", {"org": "2"}), "bad_token",
     "wrong_params"),
    ("extra_param", lambda: sub_tok("context", "billing", {"org": "1", "x": "y"}), "bad_token",
     "wrong_params"),
    ("expired", lambda: sub_tok("context", "billing", {"org": "1"}, exp_in=-120),
     "token_expired", "expired"),
    ("other_name", lambda: sub_tok("context", "invoices", {"org": "1"}), "bad_token",
     "wrong_name"),
    ("channel_scope_on_context", lambda: sub_tok("channel", "billing", {"org": "1"}),
     "bad_token", "wrong_scope"),
    ("minted_for_another_user", lambda: sub_tok("context", "billing", {"org": "1"}, sub="6"),
     "bad_token", "wrong_sub"),
    ("minted_for_anonymous", lambda: sub_tok("context", "billing", {"org": "1"}, sub=None),
     "bad_token", "wrong_sub"),
    ("bad_signature",
     lambda: sub_tok("context", "billing", {"org": "1"}, secret="wrong-" + "w" * 40),
     "bad_token", "bad_signature"),
    ("connection_token_as_subscription_token", lambda: tok(), "bad_token", "wrong_scope"),
]


@pytest.mark.parametrize("case", SUB_TOKEN_CASES, ids=[c[0] for c in SUB_TOKEN_CASES])
def test_subscription_token_refused(env, case):
    _, make, code, reason = case
    hub = env["hub"]

    async def main():
        before = rejections(hub, "sub_token", reason)
        c = await connect(hub, additional_headers=headers_for(USER5))
        await c.send({"action": "subscribe", "context": "billing", "params": {"org": 1},
                      "token": make(), "ref": "t"})
        f = await c.recv()
        assert f["error"]["code"] == code and f["ref"] == "t", f
        assert rejections(hub, "sub_token", reason) == before + 1
        await c.close()
    run(main())


def test_subscription_token_from_django_grants_exactly_its_scope(env):
    djsite.setup()
    with djsite.site(env["redis"].url):
        u = djsite.user("alice")
        ctx = djsite.subscription_token("context", "billing", {"org": 1}, u)
        chan = djsite.subscription_token("channel", "vip", {"room": "a"}, u)
    SEEN_TOKENS.extend([ctx, chan])

    async def main():
        c = await connect(env["hub"], additional_headers=headers_for({"sub": str(u.pk)}))
        await c.send({"action": "subscribe", "context": "billing", "params": {"org": "1"},
                      "token": ctx, "ref": 1})
        assert (await c.recv()).get("subscribed") is True
        await c.send({"action": "subscribe", "channel": "vip", "params": {"room": "a"},
                      "token": chan, "ref": 2})
        assert (await c.recv()).get("subscribed") is True
        # holding the token-granted subscription, it may send on that channel
        await c.send({"action": "message", "channel": "vip", "params": {"room": "a"}, "data": 1})
        assert await c.ping_barrier() == []
        await c.close()
    run(main())


# ---- 5. Django session cookies

def upgrade_with_cookie(hub: Hub, value: str, origin: str | None = "https://app.test") -> int:
    h = {"Cookie": f"csrftoken=abc; sessionid={value}; theme=dark"}
    if origin is not None:
        h["Origin"] = origin
    return raw_upgrade(hub.port, h)


async def cookie_client(hub: Hub, value: str, origin: str | None = "https://app.test"):
    h = {"Cookie": f"sessionid={value}"}
    if origin:
        h["Origin"] = origin
    return await connect(hub, additional_headers=h)


def test_real_django_signed_cookie_session(env):
    with djsite.site(env["redis"].url):
        u = djsite.user("bob", staff=True)
        cookie = djsite.cookie(djsite.login(u))

    async def main():
        c = await cookie_client(env["hub"], cookie)
        assert c.welcome["welcome"]["identity"] == {"sub": str(u.pk), "staff": True,
                                                    "super": False}
        await c.subscribe(context="admin_stats")
        await c.subscribe(context="user", params={"user_id": u.pk})
        await c.close()
    run(main())


def test_signed_cookie_made_with_a_fallback_key(env):
    with djsite.site(env["redis"].url):
        u = djsite.user("carol")
        client = djsite.login(u)
        # the same session data, signed with SECRET_KEY_FALLBACKS[0]
        from django.core import signing
        from django.contrib.sessions.serializers import JSONSerializer
        data = signing.loads(djsite.cookie(client), salt=djsite.SIGNED,
                             serializer=JSONSerializer)
        old = djsite.sign_session(data, key=djsite.FALLBACK_KEY)

    async def main():
        c = await cookie_client(env["hub"], old)
        assert c.welcome["welcome"]["identity"]["sub"] == str(u.pk)
        await c.close()
    run(main())


def _forged(env):
    return djsite.sign_session({"_auth_user_id": "1", "_mizan_hub_sid": "x"},
                               key="not-the-site-key-" + "q" * 30)


def _tampered(env):
    with djsite.site(env["redis"].url):
        value = djsite.cookie(djsite.login(djsite.user("dave")))
    payload, ts, sig = value.rsplit(":", 2)
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{flipped}:{ts}:{sig}"


def _expired(env):
    with djsite.site(env["redis"].url):
        return djsite.cookie(djsite.login(djsite.user("erin"), at=time.time() - 7200))


def _bad_signature_bytes(env):
    with djsite.site(env["redis"].url):
        value = djsite.cookie(djsite.login(djsite.user("frank")))
    return value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")


COOKIE_CASES = [
    ("forged_with_another_key", _forged, 401, "cookie", "bad_signature"),
    ("tampered_payload", _tampered, 401, "cookie", "bad_signature"),
    ("tampered_signature", _bad_signature_bytes, 401, "cookie", "bad_signature"),
    ("older_than_session_max_age", _expired, 401, "cookie", "expired"),
    ("not_a_signed_value", lambda env: "a:b", 401, "cookie", "malformed"),
]


@pytest.mark.parametrize("case", COOKIE_CASES, ids=[c[0] for c in COOKIE_CASES])
def test_bad_session_cookie_is_http_401(env, case):
    _, make, status, stage, reason = case
    hub = env["hub"]
    value = make(env)
    before = rejections(hub, stage, reason)
    assert upgrade_with_cookie(hub, value) == status
    assert rejections(hub, stage, reason) == before + 1


@pytest.mark.parametrize("origin,status", [
    ("https://evil.test", 403),
    ("http://app.test", 403),               # scheme matters
    ("https://app.test.evil.test", 403),    # not a prefix match
    ("https://trusted.test", 403),          # the wildcard is for subdomains
    ("https://shop.trusted.test", 101),
    ("https://app.test", 101),
    (None, 101),                            # not a browser: no Origin, nothing to hijack
])
def test_cookie_upgrade_origin_allowlist(env, origin, status):
    with djsite.site(env["redis"].url):
        cookie = djsite.cookie(djsite.login(djsite.user("grace")))
    hub = env["hub"]
    before = rejections(hub, "upgrade", "origin")
    assert upgrade_with_cookie(hub, cookie, origin) == status
    assert rejections(hub, "upgrade", "origin") == before + (status == 403)


def test_token_upgrade_is_not_subject_to_the_origin_list(env):
    assert raw_upgrade(env["hub"].port, {"Origin": "https://evil.test",
                                         "Authorization": "Bearer " + tok()}) == 101


def test_signed_cookie_after_logout_is_anonymous_and_live_socket_gets_4005(env):
    with djsite.site(env["redis"].url):
        u = djsite.user("heidi")
        client = djsite.login(u)
        cookie = djsite.cookie(client)

    async def main():
        live = await cookie_client(env["hub"], cookie)
        assert live.welcome["welcome"]["identity"]["sub"] == str(u.pk)
        await live.subscribe(context="notifications")
        with djsite.site(env["redis"].url):
            client.logout()   # Django deletes the entry and publishes `logout`
        assert (await live.wait_closed(5 * SLOW))[0] == 4005
        # The cookie is still validly signed, but its session is over.
        before = rejections(env["hub"], "cookie", "session_unknown")
        again = await cookie_client(env["hub"], cookie)
        assert again.welcome["welcome"]["identity"] is None
        await again.send({"action": "subscribe", "context": "notifications", "ref": 1})
        assert (await again.recv())["error"]["code"] == "unauthorized"
        assert rejections(env["hub"], "cookie", "session_unknown") == before + 1
        await again.close()
    run(main())


def test_session_cookie_on_a_stream_then_logout(env):
    """SPEC 6.1: a Server-Sent Events stream authenticates with the session
    cookie (and its Origin) as an upgrade does; the query's subscription is
    granted to that user; Django's logout ends the stream with 4005."""
    from hubtest import SseStream
    with djsite.site(env["redis"].url):
        u = djsite.user("ivan")
        client = djsite.login(u)
        cookie = djsite.cookie(client)
    s = SseStream(env["hub"].port, subscribe=[{"context": "user", "params": {"user_id": u.pk}}],
                  headers={"Cookie": f"sessionid={cookie}", "Origin": "https://app.test"})
    assert s.status == 200, s.body
    assert s.headers["access-control-allow-origin"] == "https://app.test"
    assert s.headers["access-control-allow-credentials"] == "true"
    got = s.until(lambda f: f.get("subscribed") or "error" in f)
    assert got[1]["welcome"]["identity"]["sub"] == str(u.pk)
    assert got[-1]["subscribed"] is True
    with djsite.site(env["redis"].url):
        client.logout()
    assert s.until(lambda f: "close" in f)[-1] == {"close": {"code": 4005,
                                                              "reason": "session ended"}}
    assert s.next_event() is None


def test_cache_session_through_the_registry_and_logout(env):
    with djsite.site(env["redis"].url, engine=djsite.CACHE):
        u = djsite.user("ivan", superuser=True)
        client = djsite.login(u)
        cookie = djsite.cookie(client)
    assert ":" not in cookie  # a session key, not signed data

    async def main():
        c = await cookie_client(env["hub"], cookie)
        assert c.welcome["welcome"]["identity"] == {"sub": str(u.pk), "staff": False,
                                                    "super": True}
        await c.subscribe(context="su_panel")
        with djsite.site(env["redis"].url, engine=djsite.CACHE):
            client.logout()
        assert (await c.wait_closed(5 * SLOW))[0] == 4005
        # A session key nobody registered (logged out, expired, invented): anonymous.
        d = await cookie_client(env["hub"], cookie)
        assert d.welcome["welcome"]["identity"] is None
        await d.close()
    run(main())


def test_frames_sent_before_the_session_lookup_answers_wait_for_it(env):
    with djsite.site(env["redis"].url, engine=djsite.CACHE):
        u = djsite.user("judy")
        cookie = djsite.cookie(djsite.login(u))
    s = socket.create_connection(("127.0.0.1", env["hub"].port), timeout=5 * SLOW)
    # The upgrade and a subscribe in one write: the subscribe is read while
    # the Redis lookup is in flight and must be handled as the user's.
    from hubtest import RawWS
    ws = RawWS.__new__(RawWS)
    ws.sock, ws.buf = s, b""
    key = base64.b64encode(os.urandom(16)).decode()
    frame = json.dumps({"action": "subscribe", "context": "notifications", "ref": 9}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(frame))
    s.sendall((f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Cookie: sessionid={cookie}\r\n\r\n").encode()
              + bytes([0x81, 0x80 | len(frame)]) + mask + masked)
    while b"\r\n\r\n" not in ws.buf:
        ws.buf += s.recv(4096)
    head, ws.buf = ws.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    assert ws.recv_json()["welcome"]["identity"]["sub"] == str(u.pk)
    assert ws.recv_json().get("subscribed") is True
    ws.close()


def test_anonymous_django_session_is_anonymous(env):
    djsite.setup()
    with djsite.site(env["redis"].url):
        value = djsite.anonymous_signed_cookie()

    async def main():
        c = await cookie_client(env["hub"], value)
        assert c.welcome["welcome"]["identity"] is None
        await c.subscribe(context="todos")
        await c.close()
    run(main())


# ---- 6. happy paths for tokens

def test_django_minted_mwt_from_header_and_from_first_frame(env):
    with djsite.site(env["redis"].url):
        u = djsite.user("kim", staff=True)
        t1 = djsite.connection_token(u)
        t2 = djsite.connection_token(u)
    SEEN_TOKENS.extend([t1, t2])

    async def main():
        c = await connect(env["hub"], additional_headers={"Authorization": "Bearer " + t1})
        assert c.welcome["welcome"]["identity"] == {"sub": str(u.pk), "staff": True,
                                                    "super": False}
        await c.close()
        d = await connect(env["hub"])
        await d.send({"action": "auth", "token": t2, "ref": 1})
        assert (await d.recv())["authed"]["identity"]["sub"] == str(u.pk)
        await d.subscribe(context="admin_stats")
        await d.close()
    run(main())


def test_rs256_token_from_the_jwks(env):
    t = jwt.encode({"sub": "5", "exp": int(time.time()) + 300, "aud": AUD}, RSA_PRIVATE,
                   algorithm="RS256", headers={"kid": "rs1"})
    SEEN_TOKENS.append(t)
    assert raw_upgrade(env["hub"].port, {"Authorization": "Bearer " + t}) == 101


# ---- 7. SIGHUP reloads the registry without dropping connections

def test_sighup_reloads_the_registry_and_keeps_connections(env):
    hub, path = env["hub"], env["dir"] / "registry.json"

    async def main():
        kept = await connect(hub)
        await kept.subscribe(context="todos")
        changed = json.loads(json.dumps(REGISTRY))
        changed["contexts"]["todos"]["guard"] = "auth"
        path.write_text(json.dumps(changed))
        try:
            hub.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5 * SLOW
            while "registry" not in hub.stderr_text().split("SIGHUP")[-1]:
                assert time.monotonic() < deadline, "no reload logged"
                await asyncio.sleep(0.05)
            late = await connect(hub)
            await late.send({"action": "subscribe", "context": "todos", "ref": 1})
            assert (await late.recv())["error"]["code"] == "unauthorized"
            assert await kept.ping_barrier() == []  # still open, still subscribed
            await late.close()
            # a broken file is refused and the registry in force stays
            path.write_text("{not json")
            hub.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5 * SLOW
            while "not reloaded" not in hub.stderr_text():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            again = await connect(hub)
            await again.send({"action": "subscribe", "context": "todos", "ref": 2})
            assert (await again.recv())["error"]["code"] == "unauthorized"
            await again.close()
        finally:
            path.write_text(json.dumps(REGISTRY))
            hub.signal(signal.SIGHUP)
            await asyncio.sleep(0.3 * SLOW)
        await kept.close()
    run(main())


# ---- 8. limits (hubs of their own)

def test_connections_per_ip_limit_is_http_429(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous=True, max_connections_per_ip=3)

    async def main():
        held = [await connect(hub) for _ in range(3)]
        # Counted on accept: every socket from the address, /metrics too.
        assert raw_upgrade(hub.port, {}) == 429
        await held[0].close()
        await asyncio.sleep(0.2 * SLOW)
        again = await connect(hub)  # the count went down with the close
        for c in held[1:] + [again]:
            await c.close()
        await asyncio.sleep(0.2 * SLOW)
        assert rejections(hub, "limit", "ip_limit") == 1
    run(main())


def test_total_connection_limit_is_http_503(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous=True, max_connections=2)

    async def main():
        held = [await connect(hub) for _ in range(2)]
        assert raw_upgrade(hub.port, {}) == 503
        assert rejections(hub, "limit", "connection_limit") == 1
        for c in held:
            await c.close()
    run(main())


def test_frame_rate_limit_sends_rate_limited_then_closes_4029(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous=True, frame_rate=1, frame_burst=10)

    async def main():
        c = await connect(hub)
        codes = []
        # Paced so the close handshake is not racing frames still in flight
        # (a flood gets the close too, but its unread input can turn the
        # close into a TCP reset on the client's side).
        for i in range(20):
            await c.send({"action": "ping", "ref": i})
            f = await c.recv()
            codes.append("pong" if "pong" in f else f["error"]["code"])
            if codes[-1] != "pong":
                break
        assert codes == ["pong"] * 10 + ["rate_limited"], codes
        assert (await c.wait_closed(5 * SLOW))[0] == 4029
        assert rejections(hub, "limit", "frame_rate") == 1
    run(main())


def test_subscriptions_per_connection_limit(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous=True, max_subs=3)

    async def main():
        c = await connect(hub)
        for k in range(3):
            await c.subscribe(context="k", params={"k": k})
        await c.send({"action": "subscribe", "context": "k", "params": {"k": 9}, "ref": "x"})
        assert (await c.recv())["error"]["code"] == "too_many_subscriptions"
        await c.close()
    run(main())


def test_wrong_issuer_is_http_401(make_hub, redis_server):
    hub = make_hub(redis_server, jwt_secret=SECRET, jwt_issuer="https://app.test")
    assert raw_upgrade(hub.port, {"Authorization": "Bearer " + tok(iss="https://evil.test")}) == 401
    assert rejections(hub, "upgrade", "wrong_issuer") == 1
    assert raw_upgrade(hub.port, {"Authorization": "Bearer " + tok(iss="https://app.test")}) == 101


def test_signed_cookie_without_a_registry_entry_id_is_anonymous(make_hub, redis_server, tmp_path):
    # A site whose Django app does not keep the session registry: verified,
    # but with no _mizan_hub_sid there are no flags and no logout -- anonymous.
    keys = tmp_path / "keys"
    keys.write_text(djsite.SECRET_KEY + "\n")
    hub = make_hub(redis_server, django_secret_keys_file=keys, allow_anonymous=True)
    value = djsite.sign_session({"_auth_user_id": "5"}, key=djsite.SECRET_KEY)

    async def main():
        c = await cookie_client(hub, value, origin=None)
        assert c.welcome["welcome"]["identity"] is None
        await c.close()
    run(main())
    assert rejections(hub, "cookie", "unregistered") == 1


# ---- 9. issue 12: declared params, the shape cap, identity changes

from hubtest import poll, publish_invalidate  # noqa: E402


def _metric(hub: Hub, name: str) -> float:
    return hub.metrics().get("mizan_hub_" + name, 0.0)


def test_undeclared_param_is_bad_param_and_others_are_unaffected(env):
    """Issue 12 item 5: the registry's `params` list is enforced, on
    subscribe and message, for contexts and channels, before the guard."""
    hub = env["hub"]
    r = env["redis"].client()

    async def main():
        before = rejections(hub, "subscribe", "bad_param")
        before_msg = rejections(hub, "message", "bad_param")
        good = await connect(hub, additional_headers=headers_for(USER5))
        await good.subscribe(context="user", params={"user_id": 5})
        bad = await connect(hub, additional_headers=headers_for(USER5))
        cases = [
            {"action": "subscribe", "context": "user", "params": {"user_id": 5, "x1": 1}},
            {"action": "subscribe", "context": "todos", "params": {"x2": "a"}},  # declares []
            {"action": "subscribe", "channel": "chat", "params": {"room": "a", "x3": 1}},
        ]
        for i, frame in enumerate(cases):
            await bad.send(dict(frame, ref=i))
            f = await bad.recv()
            assert f["error"]["code"] == "bad_param" and f["ref"] == i, f
            assert f"params.x{i + 1}" in f["error"]["message"], f
        await bad.send({"action": "message", "channel": "chat", "params": {"room": "a", "x4": 1},
                        "data": 1, "ref": "m"})
        f = await bad.recv()
        assert f["error"]["code"] == "bad_param" and "x4" in f["error"]["message"], f
        # the guard comes after: an anonymous client learns the same thing
        anon = await connect(hub)
        await anon.send({"action": "subscribe", "context": "user",
                         "params": {"user_id": 5, "x5": 1}, "ref": "a"})
        assert (await anon.recv())["error"]["code"] == "bad_param"
        assert rejections(hub, "subscribe", "bad_param") == before + 4
        assert rejections(hub, "message", "bad_param") == before_msg + 1
        # declared names still work, and the honest subscriber is served
        await bad.subscribe(context="user", params={"user_id": "5"})
        publish_invalidate(r, [{"context": "user", "params": {"user_id": "5"}}], {"user": "p1:1"})
        for c in (good, bad):
            f = await c.recv()
            assert f["invalidate"] == [{"context": "user", "params": {"user_id": "5"}}], f
        for c in (good, bad, anon):
            await c.close()
    run(main())


def test_shape_cap_refuses_new_param_sets_with_too_large(make_hub, redis_server):
    """Issue 12 item 5: at most --max-shapes param-name sets per context;
    one more is `too_large` (counted), existing shapes and other contexts
    are unaffected, and a freed shape makes room again."""
    hub = make_hub(redis_server, allow_anonymous=True, max_shapes=3)
    r = redis_server.client()

    async def main():
        honest = await connect(hub)
        for name in ("a", "b", "c"):
            await honest.subscribe(context="feed", params={name: 1})
        assert _metric(hub, "param_shapes") == 3
        attacker = await connect(hub)
        for i in range(20):
            await attacker.send({"action": "subscribe", "context": "feed",
                                 "params": {f"x{i}": 1}, "ref": i})
            f = await attacker.recv()
            assert f["error"]["code"] == "too_large" and f["ref"] == i, f
            assert "'feed'" in f["error"]["message"] and "3" in f["error"]["message"], f
            assert f["context"] == "feed" and f["params"] == {f"x{i}": "1"}, f
        assert _metric(hub, "shape_limit_refusals_total") == 20
        assert rejections(hub, "subscribe", "too_many_shapes") == 20
        assert _metric(hub, "param_shapes") == 3
        # a shape the context has, and another context, still subscribe
        await attacker.subscribe(context="feed", params={"a": 2})
        await attacker.subscribe(context="other", params={"x0": 1})
        publish_invalidate(r, [{"context": "feed", "params": {"a": "1"}}], {"feed": "s1:1"})
        f = await honest.recv()
        assert f["invalidate"] == [{"context": "feed", "params": {"a": "1"}}], f
        assert await attacker.ping_barrier() == []
        # the last subscription of a shape ends: its place is free again
        await honest.send({"action": "unsubscribe", "context": "feed", "params": {"c": 1}})
        assert (await honest.recv()).get("unsubscribed") is True
        await poll(lambda: _metric(hub, "param_shapes") == 3, 5, what="shape c freed")
        await attacker.subscribe(context="feed", params={"x0": 1})
        await honest.close()
        await attacker.close()
    run(main())


def test_second_auth_for_another_user_is_refused_and_keeps_the_first_users_subscription(env):
    """Issue 12 item 8: a connection's identity changes only by a token for
    the same sub; an `auth` frame is no way around `refresh`'s rule."""
    hub = env["hub"]
    r = env["redis"].client()

    async def main():
        before = rejections(hub, "auth", "auth_other_sub")
        c = await connect(hub)
        await c.send({"action": "auth", "token": tok(sub="5"), "ref": "a1"})
        assert (await c.recv())["authed"]["identity"]["sub"] == "5"
        await c.subscribe(context="user", params={"user_id": 5})
        await c.send({"action": "auth", "token": tok(sub="6"), "ref": "a2"})
        f = await c.recv()
        assert f["error"]["code"] == "forbidden" and f["ref"] == "a2", f
        assert rejections(hub, "auth", "auth_other_sub") == before + 1
        # still user 5: 6's scope is refused, 5's invalidations keep coming
        await c.send({"action": "subscribe", "context": "user", "params": {"user_id": 6},
                      "ref": "s6"})
        assert (await c.recv())["error"]["code"] == "forbidden"
        publish_invalidate(r, [{"context": "user", "params": {"user_id": "5"}}], {"user": "q1:1"})
        f = await c.recv()
        assert f["invalidate"] == [{"context": "user", "params": {"user_id": "5"}}], f
        # the same user's second auth is a refresh: accepted, nothing ends
        await c.send({"action": "auth", "token": tok(sub="5", exp_in=600), "ref": "a3"})
        f = await c.recv()
        assert f["authed"]["identity"]["sub"] == "5" and f["authed"]["ref"] == "a3", f
        assert await c.ping_barrier() == []
        # and an upgrade token's user cannot be swapped by a frame either
        u = await connect(hub, additional_headers=headers_for(USER5))
        await u.send({"action": "auth", "token": tok(sub="6"), "ref": "x"})
        assert (await u.recv())["error"]["code"] == "forbidden"
        assert await u.ping_barrier() == []
        await c.close()
        await u.close()
    run(main())


def test_refresh_dropping_staff_ends_staff_only_subscriptions(env):
    """Issue 12 item 8: after an identity change every subscription is
    checked again; those no longer allowed end with an `unsubscribed` frame
    carrying the error, and their invalidations stop."""
    hub = env["hub"]
    r = env["redis"].client()

    async def main():
        ended_before = _metric(hub, "subscriptions_ended_total")
        c = await connect(hub, additional_headers=headers_for(STAFF5))
        other_staff = await connect(hub, additional_headers=headers_for(STAFF5))
        await c.subscribe(context="admin_stats")
        await c.subscribe(context="user", params={"user_id": 5})
        await c.subscribe(context="todos")
        await other_staff.subscribe(context="admin_stats")
        await c.send({"action": "refresh", "token": tok(sub="5", staff=False), "ref": "r"})
        f = await c.recv()
        assert f["authed"]["identity"] == {"sub": "5", "staff": False, "super": False}, f
        f = await c.recv()
        assert f.get("unsubscribed") is True and f["context"] == "admin_stats", f
        assert f["params"] == {} and f["error"]["code"] == "forbidden", f
        assert "staff" in f["error"]["message"], f
        assert await c.ping_barrier() == []  # the others stay
        assert _metric(hub, "subscriptions_ended_total") == ended_before + 1
        publish_invalidate(r, ["admin_stats"], {"admin_stats": "w1:1"})
        publish_invalidate(r, ["todos"], {"todos": "w2:1"})
        f = await other_staff.recv()
        assert f["invalidate"] == ["admin_stats"], f
        f = await c.recv()
        assert f["invalidate"] == ["todos"], f  # admin_stats no longer reaches c
        # subscribing again is refused like any non-staff subscribe
        await c.send({"action": "subscribe", "context": "admin_stats", "ref": "again"})
        assert (await c.recv())["error"]["code"] == "forbidden"
        await c.close()
        await other_staff.close()
    run(main())


def test_default_shape_cap_refuses_the_65th_param_set(make_hub, redis_server):
    """Issue 12 item 5, with the hub's defaults (no registry): 64 shapes per
    context, then `too_large`; the index stays at 64."""
    hub = make_hub(redis_server, allow_anonymous=True)

    async def main():
        c = await connect(hub)
        for i in range(64):
            await c.subscribe(context="feed", params={f"x{i}": 1})
        await c.send({"action": "subscribe", "context": "feed", "params": {"x64": 1},
                      "ref": "over"})
        f = await c.recv()
        assert f.get("error", {}).get("code") == "too_large" and f["ref"] == "over", f
        assert _metric(hub, "param_shapes") == 64
        await c.close()
    run(main())
