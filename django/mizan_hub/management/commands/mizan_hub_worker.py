"""``manage.py mizan_hub_worker``: handle browser messages and rpc calls.

Runs until SIGTERM or SIGINT; the entry in hand is finished and
acknowledged first, so a deploy that stops workers loses nothing (an entry
cut off by SIGKILL is claimed by another worker, see mizan_hub.worker).
"""

from __future__ import annotations

import logging
import signal

from django.core.management.base import BaseCommand

from mizan_hub import handlers
from mizan_hub.worker import Worker


class Command(BaseCommand):
    help = "Consume the hub's inbound stream ({prefix}in) and answer through the hub."

    def add_arguments(self, parser):
        parser.add_argument("--consumer", help="consumer name (default: host-pid-random)")
        parser.add_argument("--concurrency", type=int, default=None,
                            help="entries handled at once, by that many threads (default: "
                                 "MIZAN_HUB['WORKER']['CONCURRENCY'], 1)")

    def handle(self, *args, **options):
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        handlers.autodiscover()
        if options.get("concurrency") is not None and options["concurrency"] < 1:
            from django.core.management.base import CommandError
            raise CommandError("--concurrency must be 1 or more")
        worker = Worker(consumer=options.get("consumer"), concurrency=options.get("concurrency"))

        def stop(signum, frame):
            logging.getLogger("mizan_hub.worker").info(
                "signal %s: finishing the entry in hand", signum)
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stderr.write(f"mizan-hub worker {worker.consumer}: {handlers.registered()}")
        worker.run()
