"""``manage.py mizan_hub_registry [--output FILE] [--publish]``: write the
hub's registry to a file, or store it in Redis for every hub at once."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from mizan_hub.registry import publish_registry, registry_json

from .mizan_hub_config import write_atomically


class Command(BaseCommand):
    help = ("Write the authorization registry the hub loads (SPEC section 12) from "
            "MIZAN_HUB['CONTEXTS'/'CHANNELS'] and, when installed, izana's registry.")

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")
        parser.add_argument("--indent", type=int, default=2,
                            help="JSON indentation, 0 for one line (default 2)")
        parser.add_argument("--publish", action="store_true",
                            help="store it at {prefix}registry and announce it on {prefix}events: "
                                 "every hub started with --registry-from-redis reads it (SPEC 11)")

    def handle(self, *args, **options):
        text = registry_json(indent=options["indent"] or None)
        if options["publish"]:
            version = publish_registry(text)
            self.stderr.write(f"registry version {version} stored in Redis and announced")
            if not options["output"]:
                return
        output = options["output"]
        if not output:
            self.stdout.write(text, ending="")
            return
        # Replaced in one rename: a hub reloading on SIGHUP never reads half a file.
        path = Path(output)
        write_atomically(path, text, 0o644)
        self.stderr.write(f"registry written to {path}")
