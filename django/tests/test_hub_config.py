"""``manage.py mizan_hub_config``: the hub's configuration from Django's
settings. The files it writes (values, modes, refusals), the hub setting
names it knows against the real binary's ``--help``, and the real hub
started with nothing but ``--config FILE``: a cookie-authenticated and a
token-authenticated connection work, the registry and the prefix are
Django's, an Origin not derived from the settings is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as DjangoClient
from django.test import override_settings

import mizan_hub
from mizan_hub import conf
from tests.conftest import HUB, free_port, running_hub

websocket = pytest.importorskip("websocket")

needs_hub = pytest.mark.skipif(not HUB.is_file(), reason=f"no hub binary at {HUB}")


def hub_with(**changes):
    from django.conf import settings
    return {**settings.MIZAN_HUB, **changes}


def config_lines(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            out[name.strip()] = value.strip()
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- the files


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
                   SECRET_KEY_FALLBACKS=["old-key-0123456789abcdef0123456789abcdef"],
                   ALLOWED_HOSTS=["app.example.com", ".example.org", "*"],
                   CSRF_TRUSTED_ORIGINS=["http://localhost:8000"],
                   SESSION_COOKIE_NAME="sid", SESSION_COOKIE_AGE=3600)
def test_the_files_and_their_values(tmp_path, redis_url):
    from django.conf import settings
    with override_settings(MIZAN_HUB=hub_with(
            PREFIX="app1:", REDIS_URL="redis://:pa%3Ass@127.0.0.1:6390/2",
            HUB={"listen": "0.0.0.0:9000", "workers": 2, "allow_anonymous": False})):
        call_command("mizan_hub_config", "-o", str(tmp_path / "etc" / "hub.conf"))
    conf_file = tmp_path / "etc" / "hub.conf"
    values = config_lines(conf_file)
    assert values == {
        "redis": "redis://:pa:ss@127.0.0.1:6390/2",
        "redis_prefix": "app1:",
        "registry": str(tmp_path / "etc" / "hub.registry.json"),
        "jwt_keys": str(tmp_path / "etc" / "hub.jwks.json"),
        "jwt_audience": "mizan",
        "session_cookie": "sid",
        "session_max_age": "3600",
        "django_secret_keys_file": str(tmp_path / "etc" / "hub.secret-keys"),
        "allowed_origins": "http://localhost:8000,https://app.example.com,"
                           "https://example.org,https://*.example.org",
        "listen": "0.0.0.0:9000",
        "workers": "2",
        "allow_anonymous": "false",
    }
    assert mode(conf_file) == 0o600, "the Redis password is in it"
    keys = json.loads((tmp_path / "etc" / "hub.jwks.json").read_text())
    assert keys == {"keys": [{"kty": "oct", "kid": "v1", "alg": "HS256",
                              "k": "dGVzdHMtdG9rZW4ta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5"}]}
    assert mode(tmp_path / "etc" / "hub.jwks.json") == 0o600
    secret_keys = tmp_path / "etc" / "hub.secret-keys"
    assert secret_keys.read_text() == f"{settings.SECRET_KEY}\nold-key-0123456789abcdef0123456789abcdef\n"
    assert mode(secret_keys) == 0o600
    assert mode(tmp_path / "etc" / "hub.registry.json") == 0o644
    from mizan_hub.registry import registry_json
    assert (tmp_path / "etc" / "hub.registry.json").read_text() == registry_json(indent=2)


def test_database_sessions_write_no_secret_and_a_plain_url_a_readable_file(tmp_path):
    with override_settings(MIZAN_HUB=hub_with(REDIS_URL="redis://127.0.0.1:6390")):
        call_command("mizan_hub_config", "-o", str(tmp_path / "hub.conf"))
    values = config_lines(tmp_path / "hub.conf")
    assert values["redis"] == "redis://127.0.0.1:6390/0"
    assert "django_secret_keys_file" not in values
    assert not (tmp_path / "hub.secret-keys").exists()
    assert values["allowed_origins"] == "https://testserver"  # pytest-django's ALLOWED_HOSTS
    assert mode(tmp_path / "hub.conf") == 0o644


def test_sentinels_are_written_for_the_hub(tmp_path):
    """REDIS_SENTINELS, REDIS_MASTER_NAME and REDIS_SENTINEL_PASSWORD become
    the hub's --redis-sentinels (HOST:PORT split at the last ':', no
    brackets), --redis-master-name and --redis-sentinel-password; a
    Sentinel password makes the file private like a Redis one."""
    with override_settings(MIZAN_HUB=hub_with(
            REDIS_URL="redis://127.0.0.1:6390/3",
            REDIS_SENTINELS=["10.0.0.1:26379", ("10.0.0.2", 26380), "[::1]:26381"],
            REDIS_MASTER_NAME="app", REDIS_SENTINEL_PASSWORD="s3cret")):
        call_command("mizan_hub_config", "-o", str(tmp_path / "hub.conf"))
    values = config_lines(tmp_path / "hub.conf")
    assert values["redis"] == "redis://127.0.0.1:6390/3"
    assert values["redis_sentinels"] == "10.0.0.1:26379,10.0.0.2:26380,::1:26381"
    assert values["redis_master_name"] == "app"
    assert values["redis_sentinel_password"] == "s3cret"
    assert mode(tmp_path / "hub.conf") == 0o600
    with override_settings(MIZAN_HUB=hub_with(REDIS_URL="redis://127.0.0.1:6390/3")):
        call_command("mizan_hub_config", "-o", str(tmp_path / "plain.conf"))
    assert not {"redis_sentinels", "redis_master_name"} & set(config_lines(tmp_path / "plain.conf"))


@pytest.mark.parametrize("url, written", [
    ("rediss://127.0.0.1:6380/0", "rediss://127.0.0.1:6380/0"),
    ("redis://app:p%40w:x@127.0.0.1/2", "redis://app:p@w:x@127.0.0.1:6379/2"),
    ("redis://default:pw@127.0.0.1/0", "redis://:pw@127.0.0.1:6379/0"),
    ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
])
def test_what_the_hub_reads_is_written_as_it_reads_it(url, written):
    from mizan_hub.management.commands.mizan_hub_config import hub_redis_url
    assert hub_redis_url(url)[0] == written


@pytest.mark.parametrize("changes, message", [
    ({"REDIS_URL": "unix:///run/redis.sock"}, "rediss:// URLs only"),
    ({"REDIS_URL": "redis://a%3Ab:pw@127.0.0.1/0"}, "contains ':' or '@'"),
    ({"REDIS_URL": "redis://127.0.0.1/16"}, "0-15"),
    ({"HUB": {"redis_prefix": "x:"}}, "written from MIZAN_HUB['PREFIX']"),
    ({"HUB": {"redis": "redis://127.0.0.1/1"}}, "written from MIZAN_HUB['REDIS_URL']"),
    ({"HUB": {"prefix": "x:"}}, "not a hub setting"),
    ({"HUB": {"log_level": "debug\nallow_anonymous = true"}}, "one config line"),
    ({"REDIS_SENTINELS": ["10.0.0.1"]}, "is not host:port"),
    ({"HUB": {"redis_sentinels": "10.0.0.1:26379"}}, "written from MIZAN_HUB['REDIS_SENTINELS']"),
])
def test_what_the_hub_cannot_read_is_refused(tmp_path, changes, message):
    with override_settings(MIZAN_HUB=hub_with(**changes)):
        with pytest.raises(CommandError, match=re.escape(message)):
            call_command("mizan_hub_config", "-o", str(tmp_path / "hub.conf"))
    assert not (tmp_path / "hub.conf").exists()


@needs_hub
def test_the_known_hub_settings_are_the_binarys():
    help_text = subprocess.run([str(HUB), "--help"], capture_output=True, text=True,
                               timeout=20).stdout
    flags = {f.replace("-", "_") for f in re.findall(r"^  --([a-z0-9-]+)", help_text, re.M)}
    assert flags - {"config", "help", "version"} == set(conf.HUB_SETTINGS)
    assert set(conf.DERIVED) <= flags


# ---------------------------------------------------------------- the real hub


@contextlib.contextmanager
def hub_from_settings(tmp_path, **hub_changes):
    """The hub started with `--config FILE` alone, FILE written by the
    command from the settings: signed-cookie sessions, a prefix of its own,
    origins from CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS, ``hub_changes``."""
    port = free_port()
    overrides = override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        ALLOWED_HOSTS=["testserver", "app.example.com"],
        CSRF_TRUSTED_ORIGINS=["http://localhost:8000"],
        MIZAN_HUB=hub_with(PREFIX="cfg:", HUB={
            "listen": f"127.0.0.1:{port}", "log_level": "warn", "drain_window": 0,
            "canary_interval_ms": 50}, **hub_changes))
    overrides.enable()
    path = tmp_path / "hub.conf"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIZAN_HUB_")}
    try:
        call_command("mizan_hub_config", "-o", str(path))
        with running_hub(["--config", str(path)], port, tmp_path / "hub.log", env=env) as url:
            yield url
    finally:
        overrides.disable()


@pytest.fixture
def configured_hub(tmp_path, redis_url, r):
    with hub_from_settings(tmp_path) as url:
        yield url


def connect(url, **kw):
    ws = websocket.create_connection(url, timeout=3, **kw)
    return ws, json.loads(ws.recv())


def frame(ws, **send):
    ws.send(json.dumps(send))
    return json.loads(ws.recv())


@needs_hub
@pytest.mark.django_db(transaction=True)
def test_the_hub_runs_on_the_written_config_alone(configured_hub):
    from django.conf import settings
    user = User.objects.create_user("ann", password="x")
    browser = DjangoClient()
    browser.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"

    # Cookie auth: the signed session verified with the written secret-keys
    # file, the registry entry found under Django's prefix.
    ws, hello = connect(configured_hub, cookie=cookie, origin="http://localhost:8000")
    assert hello["welcome"]["identity"]["sub"] == str(user.pk)
    # The registry is Django's: user_id must be the connection's own.
    assert frame(ws, action="subscribe", context="user", params={"user_id": user.pk})["subscribed"]
    refused = frame(ws, action="subscribe", context="user", params={"user_id": user.pk + 1})
    assert refused["error"]["code"] == "forbidden", refused
    # Publishing with Django's prefix reaches it.
    mizan_hub.invalidate(("user", {"user_id": user.pk}))
    pushed = json.loads(ws.recv())
    assert pushed["invalidate"] == [{"context": "user", "params": {"user_id": str(user.pk)}}]
    ws.close()

    # An origin the settings do not name: refused before the upgrade.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused_origin:
        connect(configured_hub, cookie=cookie, origin="http://evil.example")
    assert refused_origin.value.status_code == 403

    # Token auth: Django's key in the written JWKS, Django's audience.
    token, _ = mizan_hub.connection_token(user)
    ws, hello = connect(configured_hub, header=[f"Authorization: Bearer {token}"])
    assert hello["welcome"]["identity"]["sub"] == str(user.pk)
    assert frame(ws, action="subscribe", context="user", params={"user_id": user.pk})["subscribed"]
    ws.close()

    # Nothing at all: the registry's "auth" guard refuses an anonymous subscriber.
    ws, hello = connect(configured_hub)
    assert hello["welcome"]["identity"] is None
    anon = frame(ws, action="subscribe", context="user", params={"user_id": user.pk})
    assert anon["error"]["code"] in ("unauthorized", "forbidden"), anon
    ws.close()


def private_pem(algorithm: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    key = (ec.generate_private_key(ec.SECP256R1()) if algorithm == "ES256"
           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@needs_hub
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_asymmetric_keys_go_to_the_hub_as_their_public_halves(algorithm, tmp_path, redis_url, r):
    pytest.importorskip("cryptography")
    pem = private_pem(algorithm)
    token_settings = {"KEYS": {"k1": pem}, "KID": "k1", "ALGORITHM": algorithm}
    with hub_from_settings(tmp_path, TOKEN=token_settings) as url:
        written = json.loads((tmp_path / "hub.jwks.json").read_text())["keys"]
        assert [(k["kid"], k["alg"], k["kty"]) for k in written] == [
            ("k1", algorithm, "EC" if algorithm == "ES256" else "RSA")]
        assert "PRIVATE" not in written[0]["pem"] and "PUBLIC KEY" in written[0]["pem"]
        user = User.objects.create_user("bo")
        token, _ = mizan_hub.connection_token(user)
        ws, hello = connect(url, header=[f"Authorization: Bearer {token}"])
        assert hello["welcome"]["identity"]["sub"] == str(user.pk)
        ws.close()
