"""The app config: importing the signal receivers and checks is what turns
them on, so it happens in ``ready()``, after every model is loaded."""

from __future__ import annotations

from django.apps import AppConfig


class MizanHubConfig(AppConfig):
    name = "mizan_hub"
    verbose_name = "mizan-hub"

    def ready(self) -> None:
        from . import checks, receivers, sessions  # noqa: F401  (registers)

        receivers.connect_settings()
