"""``manage.py mizan_hub_relay``: publish what the outbox still holds.

Every ``invalidate()``/``publish()`` is written to the outbox in the caller's
transaction and published right after the commit by the process that made
it. What that could not publish -- Redis was down, the process died between
the commit and the publish -- stays queued; this command publishes it, in
order, and deletes each row once Redis acknowledged it (see mizan_hub.outbox).

Runs until SIGTERM/SIGINT (the pass in hand is finished first), polling the
queue every ``--interval`` seconds and backing off while Redis is away.
``--once`` drains the queue and exits: status 0 when nothing is left, 1 when
rows remain (Redis unavailable). ``--metrics`` prints the lag (rows pending,
age of the oldest, rows refused, per database) as Prometheus text; ``--requeue-refused`` puts rows Redis refused back.
The inbound worker (``mizan_hub_worker``) relays too, so a site that runs
it needs this command only for ``--once``/``--metrics`` or without workers.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError

from mizan_hub import outbox, stats

logger = logging.getLogger("mizan_hub.outbox")


class Command(BaseCommand):
    help = "Publish the events queued in the mizan-hub outbox (at least once, in order)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true",
                            help="drain the queue once and exit (1 when rows remain)")
        parser.add_argument("--interval", type=float, default=0.5,
                            help="seconds between polls of an empty queue (default 0.5)")
        parser.add_argument("--database", action="append", dest="databases",
                            help="a database alias (repeatable; default: every database "
                                 "that holds the outbox table)")
        parser.add_argument("--metrics", action="store_true",
                            help="print the outbox lag per database (Prometheus text) and exit")
        parser.add_argument("--requeue-refused", action="store_true",
                            help="put the rows Redis refused back in the queue, then go on")

    def handle(self, *args, **options):
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        aliases = options["databases"] or outbox.databases()
        if options["metrics"]:
            # this process's counters would all be 0: the gauges alone
            self.stdout.write(stats.prometheus(counters=False), ending="")
            return
        if options["requeue_refused"]:
            for alias in aliases:
                count = outbox.requeue_refused(alias)
                self.stderr.write(f"{alias}: {count} refused row(s) back in the queue")
        if options["once"]:
            self.drain_once(aliases)
            return
        self.loop(aliases, options["interval"])

    def drain_once(self, aliases):
        left = []
        for alias in aliases:
            try:
                result = outbox.relay(alias, block=True)
            except outbox.OutboxTableMissing as exc:
                raise CommandError(str(exc)) from exc
            lag = outbox.lag(alias)
            self.stderr.write(f"{alias}: {result.published} published, {result.refused} "
                              f"refused, {lag['pending']} pending")
            if lag["pending"]:
                left.append(f"{alias}: {lag['pending']} row(s) pending "
                            f"({result.error or 'busy'})")
        if left:
            raise CommandError("; ".join(left))

    def loop(self, aliases, interval):
        stop = threading.Event()

        def on_signal(signum, frame):
            logger.info("mizan-hub relay: signal %s, finishing the pass in hand", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        logger.info("mizan-hub relay: watching the outbox of %s", ", ".join(aliases))
        backoff = 0.0
        next_report = 0.0
        while not stop.is_set():
            failed = None
            for alias in aliases:
                try:
                    result = outbox.relay(alias, block=False)
                except Exception as exc:  # the database away: retry, do not die
                    logger.warning("mizan-hub relay: %s: %s", alias, exc)
                    failed = str(exc)
                    continue
                failed = failed or result.error
            if failed:
                backoff = min(max(backoff * 2, 0.5), 10.0)
            else:
                backoff = 0.0
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + 60
                for alias in aliases:
                    try:
                        lag = outbox.lag(alias)
                    except Exception:
                        continue
                    if lag["pending"] or lag["refused"]:
                        logger.info("mizan-hub relay: %s: %d pending (oldest %.1fs), "
                                    "%d refused", alias, lag["pending"],
                                    lag["oldest_age_seconds"], lag["refused"])
            stop.wait(backoff or interval)
        logger.info("mizan-hub relay stopped")
