"""The Django site of the fault suite: the settings the publisher process
and `manage.py mizan_hub_config` (the hubs' configuration) share.

Configured from the environment the orchestrator (run.py) sets:
FAULTS_SENTINELS ("host:port,..."), FAULTS_DB (an SQLite file for the
outbox). The registry below is what the clients subscribe to: contexts with
zero, one (bound to the token's sub) and two params, a channel with history
and one without.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "django"))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

JWT_KEY = "fault-suite-hs256-key-0123456789abcdef"
KID = "v1"
AUDIENCE = "mizan"
MASTER = "faults"

CONTEXTS = {
    "todos": {"params": [], "guard": "auth"},
    "user": {"params": ["user_id"], "guard": "auth", "param_rules": {"user_id": "sub"}},
    "doc": {"params": ["org", "id"], "guard": "auth"},
}
CHANNELS = {
    "room": {"params": ["room"], "guard": "auth", "history": 500},
    "feed": {"params": [], "guard": "auth", "history": 0},
}


def setup() -> None:
    if settings.configured:
        return
    sentinels = [s for s in os.environ.get("FAULTS_SENTINELS", "").split(",") if s]
    settings.configure(
        SECRET_KEY="fault-suite-" + "k" * 40,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                        "django.contrib.sessions", "mizan_hub"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": os.environ.get("FAULTS_DB", ":memory:"),
                               "OPTIONS": {"timeout": 20}}},
        USE_TZ=True,
        ALLOWED_HOSTS=["127.0.0.1"],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        MIZAN_HUB={
            # with Sentinels only the database of this URL counts
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "REDIS_SENTINELS": sentinels,
            "REDIS_MASTER_NAME": MASTER,
            "REDIS_TIMEOUT": 2.0,
            "TEST_MODE": False,
            "CONTEXTS": CONTEXTS,
            "CHANNELS": CHANNELS,
            "TOKEN": {"KEYS": {KID: JWT_KEY}, "KID": KID, "AUDIENCE": AUDIENCE},
        },
        LOGGING={"version": 1, "disable_existing_loggers": False,
                 "handlers": {"err": {"class": "logging.StreamHandler"}},
                 "loggers": {"mizan_hub": {"handlers": ["err"], "level": "WARNING"}}},
    )
    django.setup()
    from django.core.management import call_command
    call_command("migrate", run_syncdb=True, verbosity=0)
