"""Settings of the test project. The suite starts its own redis-server and
points MIZAN_HUB at it (conftest.py); worker subprocesses get its URL in
MIZAN_HUB_TEST_REDIS_URL, and a database file to share in MIZAN_HUB_TEST_DB."""

import os

SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdef"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "mizan_hub",
    "tests.testapp",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("MIZAN_HUB_TEST_DB", ":memory:")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mizan_hub.middleware.MizanHubMiddleware",
]
ROOT_URLCONF = "tests.urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING_CONFIG = None

MIZAN_HUB = {
    "REDIS_URL": os.environ.get("MIZAN_HUB_TEST_REDIS_URL", "redis://127.0.0.1:9/0"),
    "REDIS_TIMEOUT": 0.5,
    # This suite tests the real publishing path against its own Redis;
    # test mode (on under pytest-django by default) has its own tests.
    "TEST_MODE": False,
    "CONTEXTS": {
        "todos": {"params": [], "guard": "public"},
        "todo": {"params": ["id"], "guard": "public"},
        "list": {"params": ["list_id"], "guard": "public"},
        "user": {"params": ["user_id"], "guard": "auth", "param_rules": {"user_id": "sub"},
                 "endpoints": ["/api/mizan/ctx/user/"], "views": ["/profile/:user_id/"]},
        "notes": {"params": ["owner"], "guard": "auth"},
        "billing": {"params": ["org"], "guard": "token"},
    },
    "CHANNELS": {
        "chat": {"params": ["room"], "guard": "auth", "history": 50},
        "ticker": {"params": [], "guard": "public"},
    },
    "MODELS": {
        "testapp.Todo": ["todos", ("todo", {"id": "pk"}), ("list", {"list_id": "list_id"})],
    },
    "TOKEN": {"KEYS": {"v1": "tests-token-key-0123456789abcdef0123456789"}},
    "WORKER": {
        "BLOCK_MS": 200,
        "CLAIM_IDLE_MS": int(os.environ.get("MIZAN_HUB_TEST_CLAIM_IDLE_MS", "60000")),
        "HANDLER_MODULES": ["tests.hub_handlers"],
    },
}
