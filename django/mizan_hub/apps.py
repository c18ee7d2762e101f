"""The app config: importing the signal receivers and checks is what turns
them on, so it happens in ``ready()``, after every model is loaded."""

from __future__ import annotations

from django.apps import AppConfig


class MizanHubConfig(AppConfig):
    name = "mizan_hub"
    verbose_name = "mizan-hub"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks, receivers, registry, sessions  # noqa: F401  (registers)

        receivers.connect_settings()
        # sender=self: once per migrate run, not once per app.
        post_migrate.connect(registry.publish_on_migrate, sender=self,
                             dispatch_uid="mizan_hub.publish_registry_on_migrate")
