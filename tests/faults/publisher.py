"""The fault suite's publisher: real Django (fdsite.py) publishing through
mizan_hub's outbox -- invalidations and channel messages, each in its own
transaction, at a steady rate -- until SIGTERM; then it relays what is left
in the outbox (Redis may have been away) and exits.

It writes a JSON-lines log: every call it makes (`intent`) and every run of
the publish script Redis answered (`pub`, with the envelope the script
returned: the entries and the versions they got, or the channel message with
its seq and epoch, and the time the answer came). The log is the ground
truth the checker compares the clients' logs with: what changed, and when.

    python publisher.py --log pub.jsonl --rate 20 --users 50 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fdsite  # noqa: E402

ORGS = 3
DOCS = 8
ROOMS = 8


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--rate", type=float, default=20.0, help="calls per second")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--drain-timeout", type=float, default=90.0)
    opts = ap.parse_args()

    fdsite.setup()
    from django.db import transaction

    import mizan_hub
    from mizan_hub import outbox, script, stats
    from mizan_hub.models import OutboxEntry

    log = open(opts.log, "a", buffering=1)
    lock = threading.Lock()

    def write(record: dict) -> None:
        with lock:
            log.write(json.dumps(record, separators=(",", ":")) + "\n")

    run = script.run

    def logged_run(client, keys, args):
        reply = run(client, keys, args)
        t = time.time()
        envelope = reply if not isinstance(reply, list) else reply[2]
        if isinstance(envelope, bytes):
            envelope = envelope.decode()
        write({"k": "pub", "t": t, "env": json.loads(envelope)})
        return reply

    script.run = logged_run  # outbox.publish_rows looks it up at each call

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    rng = random.Random(opts.seed)
    n = 0
    period = 1.0 / opts.rate
    next_at = time.monotonic()
    while not stopping.is_set():
        n += 1
        u = str(rng.randrange(opts.users))
        org, doc = str(rng.randrange(ORGS)), str(rng.randrange(DOCS))
        r = rng.random()
        entries = None
        message = None
        if r < 0.05:
            entries = ["todos"]
        elif r < 0.30:
            entries = [("user", {"user_id": u})]
        elif r < 0.55:
            entries = [("doc", {"org": org, "id": doc})]
        elif r < 0.60:
            entries = [("doc", {"org": org})]
        elif r < 0.62:
            entries = ["doc"]
        elif r < 0.70:
            entries = [("user", {"user_id": u}), ("doc", {"org": org, "id": doc})]
        elif r < 0.95:
            message = ("room", {"room": str(rng.randrange(ROOMS))})
        else:
            message = ("feed", {})
        t = time.time()
        try:
            with transaction.atomic():
                if entries is not None:
                    write({"k": "intent", "i": n, "t": t, "inv": [
                        e if isinstance(e, str) else {"context": e[0], "params": e[1]}
                        for e in entries]})
                    mizan_hub.invalidate(*entries)
                else:
                    write({"k": "intent", "i": n, "t": t,
                           "msg": {"channel": message[0], "params": message[1], "id": n}})
                    mizan_hub.publish(message[0], message[1], {"id": n})
        except Exception as exc:  # a database error: the change did not happen
            write({"k": "error", "i": n, "t": time.time(), "error": repr(exc)})
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stopping.wait(delay)
        else:
            next_at = time.monotonic()

    # What an outage left in the outbox goes out now (the relay a deploy runs).
    deadline = time.monotonic() + opts.drain_timeout
    while OutboxEntry.objects.filter(refused__isnull=True).exists() and \
            time.monotonic() < deadline:
        result = outbox.relay()
        if result.error:
            time.sleep(0.5)
    left = OutboxEntry.objects.filter(refused__isnull=True).count()
    refused = OutboxEntry.objects.filter(refused__isnull=False).count()
    write({"k": "end", "t": time.time(), "calls": n, "outbox_left": left,
           "refused": refused, "stats": {k: stats.get(k) for k in (
               "publish_failures", "outbox_written", "outbox_deferred",
               "invalidations_published", "messages_published")}})
    return 0 if left == 0 and refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
