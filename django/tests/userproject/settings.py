"""A user's test settings: no Redis anywhere, MIZAN_HUB without TEST_MODE
(auto: on under the test runner). The Redis URL names a closed port; the
guard (redis_guard.py) proves no client is even made."""

import os

from . import redis_guard

redis_guard.install()

SECRET_KEY = "userproject-secret-key-not-for-production-0123456789"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mizan_hub",
    "tests.testapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mizan_hub.middleware.MizanHubMiddleware",
]
ROOT_URLCONF = "tests.urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MIZAN_HUB = {
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "CONTEXTS": {"todos": {"params": [], "guard": "public"},
                 "todo": {"params": ["id"], "guard": "public"},
                 "list": {"params": ["list_id"], "guard": "public"}},
    "CHANNELS": {"chat": {"params": ["room"], "guard": "auth"}},
    "MODELS": {"testapp.Todo": ["todos", ("todo", {"id": "pk"}), ("list", {"list_id": "list_id"})]},
    "TOKEN": {"KEYS": {"v1": "userproject-token-key-0123456789abcdef0123"}},
}
# The control run of tests/test_testing_userproject.py turns test mode off.
if os.environ.get("USERPROJECT_TEST_MODE") == "off":
    MIZAN_HUB["TEST_MODE"] = False
