"""Settings of the demo: a shared todo list kept in sync across tabs by the hub.

Everything that differs per machine comes from the environment, so the
repo's run command can start Redis, the hub and this on ports of its choice:
MIZAN_HUB_REDIS_URL, MIZAN_HUB_URL (the hub's WebSocket URL the page
connects to), MIZAN_HUB_TOKEN_KEY, MIZAN_DEMO_DB.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-secret-key-change-me-0123456789")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "mizan_hub",
    "todos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mizan_hub.middleware.MizanHubMiddleware",
]

ROOT_URLCONF = "demo.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
}]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.environ.get("MIZAN_DEMO_DB", str(BASE_DIR / "var" / "db.sqlite3")),
}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"

BOARD_SIZE = 20

MIZAN_HUB = {
    "REDIS_URL": os.environ.get("MIZAN_HUB_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "HUB_URL": os.environ.get("MIZAN_HUB_URL", "ws://127.0.0.1:8765/"),
    # What the hub lets browsers subscribe to (manage.py mizan_hub_registry).
    "CONTEXTS": {
        "todos": {"params": [], "guard": "public", "endpoints": ["/api/todos/"]},
        # The board page (/board/): 20 contexts, one fetch each, for measuring
        # page-load requests with and without versions in responses.
        **{f"board{i}": {"params": [], "guard": "public", "endpoints": [f"/api/board/{i}/"]}
           for i in range(BOARD_SIZE)},
    },
    # Any save or delete of a Todo -- from these views, the shell, a data
    # migration -- tells every subscribed tab to refetch "todos", and the
    # board's panels, which count todos.
    "MODELS": {"todos.Todo": ["todos", *(f"board{i}" for i in range(BOARD_SIZE))]},
    "TOKEN": {"KEYS": {"v1": os.environ.get(
        "MIZAN_HUB_TOKEN_KEY", "demo-only-token-key-change-me-0123456789abcdef")}},
}
