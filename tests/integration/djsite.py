"""Real Django, configured in this process, to make what a browser of a
Django site carries: session cookies (signed_cookies, cache) made by
django.test.Client's login, with django-mizan-hub's session registry written
by its user_logged_in receiver, and tokens minted by mizan_hub.tokens.

Nothing here is a fixture written by hand: the cookies, the registry entries
and the logout envelopes are the ones Django and the app produce.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "django"))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

SECRET_KEY = "django-insecure-hub-tests-" + "k" * 32
FALLBACK_KEY = "the-previous-secret-key-" + "f" * 32
HUB_JWT_SECRET = "0123456789abcdef0123456789abcdef-hub-test"

SIGNED = "django.contrib.sessions.backends.signed_cookies"
CACHE = "django.contrib.sessions.backends.cache"


def setup() -> None:
    if settings.configured:
        return
    # The tests log out from inside their asyncio loop; the in-memory
    # database lives on this thread, so Django must not refuse that.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.configure(
        SECRET_KEY=SECRET_KEY,
        SECRET_KEY_FALLBACKS=[FALLBACK_KEY],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                        "django.contrib.sessions", "mizan_hub"],
        # a file, not :memory:, so every thread (the tests' loops) sees the tables
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": os.path.join(tempfile.mkdtemp(prefix="djsite-"),
                                                    "db.sqlite3")}},
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        SESSION_ENGINE=SIGNED,
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware"],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        MIZAN_HUB={"TOKEN": {"KEYS": {"v1": HUB_JWT_SECRET}, "KID": "v1"}},
    )
    django.setup()
    from django.core.management import call_command
    call_command("migrate", run_syncdb=True, verbosity=0)


urlpatterns: list = []


@contextmanager
def site(redis_url: str, engine: str = SIGNED, **hub_settings):
    """Django settings for one test: this Redis, this session engine, and
    any other MIZAN_HUB keys (REDIS_SHARDS, REDIS_SENTINELS, CHANNELS, ...)."""
    setup()
    from django.test import override_settings
    hub = dict(settings.MIZAN_HUB, REDIS_URL=redis_url, **hub_settings)
    with override_settings(SESSION_ENGINE=engine, MIZAN_HUB=hub):
        yield


def user(username: str, *, staff: bool = False, superuser: bool = False):
    from django.contrib.auth.models import User
    u, _ = User.objects.get_or_create(username=username)
    u.is_staff, u.is_superuser = staff, superuser
    u.save()
    return u


def login(u, *, at: float | None = None):
    """Logs 'u' in through Django; returns the test client (its cookie is
    client.cookies["sessionid"].value). 'at' signs the cookie at that time."""
    from django.test import Client
    client = Client()
    if at is None:
        client.force_login(u)
    else:
        with mock.patch("time.time", return_value=at):
            client.force_login(u)
    return client


def cookie(client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def anonymous_signed_cookie() -> str:
    """A signed_cookies session with data but nobody logged in."""
    from django.contrib.sessions.backends.signed_cookies import SessionStore
    s = SessionStore()
    s["cart"] = [1, 2, 3]
    s.save()
    return s.session_key


def sign_session(data: dict, *, key: str | None = None) -> str:
    """Session data signed the way signed_cookies does, with another key."""
    from django.core import signing
    from django.contrib.sessions.serializers import JSONSerializer
    return signing.dumps(data, key=key, salt=SIGNED, serializer=JSONSerializer, compress=True)


def connection_token(u) -> str:
    from mizan_hub.tokens import connection_token as mint
    return mint(u)[0]


def subscription_token(scope: str, name: str, params: dict, u=None, lifetime: int | None = None) -> str:
    from mizan_hub.tokens import subscription_token as mint
    return mint(scope, name, params, user=u, lifetime=lifetime)[0]
