"""The fault suite's verdict, from the publisher's log and the clients' logs
(JSON lines, see publisher.py and clients.py).

**Zero stale contexts.** For every client subscription: take the last
published event whose entry matches it (SPEC 4), at version E:N, whose
publish Redis answered at time T. The client must have received, after
subscribing, something that made it refetch at or after that change: its
first ack (the initial fetch) or an invalidate frame (live, or healing with
`reason`) carrying a version of epoch E with counter >= N, or received at
or after T (a refetch then reads the committed change: the publish follows
the commit). A resume ack is not a refetch. Otherwise the subscription is
stale.

**Zero silent losses.** For every client channel subscription: every
message published on it after its first ack (seq above the ack's seq in the
ack's epoch; any seq of a later epoch published after it subscribed) must
have been processed (by its id: two messages that got the same seq, as a
failover that loses a write can cause, are two messages) or lie in a `gap`
the client got after it was published. Order is part of it: the client drops
a message whose seq is not above the last it processed, so one delivered out
of order is a message it never processed.

**The publisher's side.** Every call the publisher made reached Redis (an
envelope with that entry, or a whole-context one, answered after the call;
every message id), and its outbox ended empty with nothing refused.

The counts are also split by the clients' transport (`client` records:
`ws`; `sse` for client-js's Server-Sent Events transport; `sse-bare` for a
page's own EventSource resuming with Last-Event-ID), so a run shows that
every kind really was there, reconnected and was healed.

    python checker.py PUBLISHER_LOG CLIENT_LOG...
"""

from __future__ import annotations

import bisect
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "django"))
from mizan_hub.protocol import canonical_key  # noqa: E402


#: The counts, in the order summary() prints them.
NAMES = ("events", "deliveries", "duplicates", "reconnects", "heals", "gaps", "stale", "lost",
         "heals_resume", "heals_gap", "clients", "subscriptions", "channel_subscriptions",
         "publisher_calls", "undelivered_calls", "unlogged_messages", "client_bugs", "errors")
#: The counts split by transport, in the order summary() prints them.
PER_TRANSPORT = ("clients", "reconnects", "deliveries", "duplicates", "heals", "heals_resume",
                 "heals_gap", "gaps", "stale", "lost", "pings", "pongs")
TRANSPORTS = ("ws", "sse", "sse-bare")


def read(paths) -> list[dict]:
    out = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a line cut by a kill: not a record
    return out


def entry_context(entry) -> str:
    return entry if isinstance(entry, str) else entry["context"]


def entry_params(entry) -> dict:
    return {} if isinstance(entry, str) else {k: str(v) for k, v in
                                              (entry.get("params") or {}).items()}


def identity(entry) -> tuple:
    params = entry_params(entry)
    if not params:
        return ("*", entry_context(entry))
    return ("=", canonical_key(entry_context(entry), params))


def matches(entry, context: str, params: dict) -> bool:
    """SPEC 4: an unscoped entry matches every subscription of its context, a
    scoped one when every param it names has the same (string) value."""
    if entry_context(entry) != context:
        return False
    return all(params.get(k) == v for k, v in entry_params(entry).items())


def split(version: str | None) -> tuple[str, int] | None:
    if not version:
        return None
    e, _, n = version.partition(":")
    return e, int(n)


def check(publisher: list[dict], clients: list[dict], *, limit: int = 20) -> dict:
    problems: list[str] = []
    counts: Counter = Counter()
    transport: dict = {}  # client -> "ws" | "sse" (a log without `client` records: ws)
    per = defaultdict(Counter)  # transport -> counts

    def count(c, name: str, n: int = 1) -> None:
        counts[name] += n
        per[transport.get(c, "ws")][name] += n

    # ---- the publisher's log: what changed, and when Redis answered
    events = defaultdict(list)  # context -> [(t, epoch, n, entry)]
    messages = defaultdict(list)  # channel key -> [(t, epoch, seq, id)]
    pub_times = defaultdict(list)  # identity -> [t] (for the intent check)
    message_ids = set()
    ends = []
    for r in publisher:
        if r["k"] == "pub":
            env = r["env"]
            if env.get("kind") == "invalidate":
                counts["events"] += 1
                for entry in env["invalidate"]:
                    c = entry_context(entry)
                    e, n = split(env["versions"][c])
                    events[c].append((r["t"], e, n, entry))
                    pub_times[identity(entry)].append(r["t"])
            elif env.get("kind") == "message":
                counts["events"] += 1
                key = canonical_key(env["channel"], env.get("params") or {})
                mid = (env.get("data") or {}).get("id")
                messages[key].append((r["t"], env["epoch"], env["seq"], mid))
                message_ids.add(mid)
        elif r["k"] == "end":
            ends.append(r)
    for times in pub_times.values():
        times.sort()
    counts["publisher_calls"] = sum(1 for r in publisher if r["k"] == "intent")
    for r in publisher:
        if r["k"] != "intent":
            continue
        if "inv" in r:
            for entry in r["inv"]:
                ok = False
                for ident in (identity(entry), ("*", entry_context(entry))):
                    times = pub_times.get(ident, [])
                    if bisect.bisect_left(times, r["t"]) < len(times):
                        ok = True
                if not ok:
                    counts["undelivered_calls"] += 1
                    if counts["undelivered_calls"] <= limit:
                        problems.append(f"publisher call {r['i']}: {entry} never reached Redis")
        elif r["msg"]["id"] not in message_ids:
            counts["undelivered_calls"] += 1
            if counts["undelivered_calls"] <= limit:
                problems.append(f"publisher call {r['i']}: message {r['msg']} never reached Redis")
    if not ends:
        problems.append("the publisher's log has no end record (it did not drain its outbox)")
    for end in ends:
        if end.get("outbox_left") or end.get("refused"):
            problems.append(f"the publisher ended with {end.get('outbox_left')} outbox rows left "
                            f"and {end.get('refused')} refused")

    # ---- the clients' logs
    subs = {}  # (client, key) -> (context, params)
    chans = {}  # (client, key) -> subscribe time
    fresh = defaultdict(list)  # (client, key) -> [(t, epoch, n)] refetch points
    seen_inv = Counter()
    acks = {}  # (client, chan key) -> first (t, epoch, seq)
    got = defaultdict(set)  # (client, chan key) -> ids processed
    gaps = defaultdict(list)  # (client, chan key) -> [(t, from, to)]
    done = set()
    conns = Counter()
    client_ids = set()
    for r in clients:
        if r["k"] == "client":
            transport[r.get("c")] = r.get("tr", "ws")
    for r in clients:
        k, c = r["k"], r.get("c")
        client_ids.add(c)
        if k == "sub":
            subs[(c, r["s"])] = (r["ctx"], {a: str(b) for a, b in r["p"].items()})
        elif k == "csub":
            chans[(c, r["s"])] = r["t"]
        elif k == "ack":
            if r["f"]:
                v = split(r["v"])
                fresh[(c, r["s"])].append((r["t"],) + (v or (None, None)))
        elif k == "inv":
            count(c, "deliveries")
            if r.get("r"):
                count(c, "heals")
                count(c, f"heals_{r['r']}")  # gap (hub link) or resume (reconnect)
            else:
                seen_inv[(c, r["s"], r.get("v"))] += 1
            v = split(r.get("v"))
            fresh[(c, r["s"])].append((r["t"],) + (v or (None, None)))
        elif k == "cack":
            if r["f"]:
                acks[(c, r["s"])] = (r["t"], r["e"], r["q"])
        elif k == "msg":
            count(c, "deliveries")
            got[(c, r["s"])].add(r["id"])
            if r["id"] not in message_ids:
                counts["unlogged_messages"] += 1
        elif k == "dup":
            count(c, "duplicates")
        elif k == "gap":
            count(c, "gaps")
            gaps[(c, r["s"])].append((r["t"], r.get("from") or 0, r.get("to") or 0))
        elif k == "conn":
            conns[c] += 1
        elif k == "done":
            done.add(c)
            count(c, "pings", r.get("pings", 0))  # browser -> hub traffic (SSE: POSTs)
            count(c, "pongs", r.get("pongs", 0))
        elif k == "err":
            # error frames (a rate_limited resume is retried): not a failure in
            # themselves, but a subscription refused never gets acked
            counts["errors"] += 1
            code = (r.get("f") or {}).get("error")
            counts[f"errors_{code.get('code') if isinstance(code, dict) else code}"] += 1
        elif k == "bug":
            counts["client_bugs"] += 1
            if counts["client_bugs"] <= limit:
                problems.append(f"client {c} failed: {r.get('e')} (its stderr has the traceback)")
    for (c, _, _), n in seen_inv.items():
        if n > 1:
            count(c, "duplicates", n - 1)
    for c in client_ids:
        count(c, "clients")
    for c, n in conns.items():
        if n > 1:
            count(c, "reconnects", n - 1)
    unfinished = sorted(client_ids - done)
    if unfinished:
        errors = {k: v for k, v in counts.items() if k.startswith("errors_")}
        problems.append(f"{len(unfinished)} clients never finished (connected with every "
                        f"subscription acked): {unfinished[:10]}; error frames: {errors}")

    for c_events in events.values():
        c_events.sort(key=lambda ev: ev[0])
    for (c, key), (context, params) in sorted(subs.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        counts["subscriptions"] += 1
        last = None
        for ev in reversed(events.get(context, [])):
            if matches(ev[3], context, params):
                last = ev
                break
        if last is None:
            continue
        t_last, e_last, n_last, entry = last
        ok = any(t >= t_last or (e == e_last and n is not None and n >= n_last)
                 for t, e, n in fresh.get((c, key), []))
        if not ok:
            count(c, "stale")
            if counts["stale"] <= limit:
                problems.append(f"STALE {transport.get(c, 'ws')} client {c} {key}: last change {e_last}:{n_last} "
                                f"({entry}) at {t_last:.3f}; refetches "
                                f"{fresh.get((c, key), [])[-3:]}")

    for (c, key), t_sub in sorted(chans.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        counts["channel_subscriptions"] += 1
        ack = acks.get((c, key))
        if ack is None:
            if messages.get(key):
                count(c, "lost")
                problems.append(f"LOST {transport.get(c, 'ws')} client {c} {key}: never acked")
            continue
        t_ack, e0, q0 = ack
        for t, e, s, mid in messages.get(key, []):
            if e == e0:
                if s <= q0:
                    continue
            elif t <= t_sub:
                continue
            if mid in got[(c, key)]:
                continue
            if any(tg >= t and (frm == 0 or frm <= s) and (to == 0 or s <= to)
                   for tg, frm, to in gaps.get((c, key), [])):
                continue
            count(c, "lost")
            if counts["lost"] <= limit:
                problems.append(f"LOST {transport.get(c, 'ws')} client {c} {key}: message {mid} ({e}:{s}, published at "
                                f"{t:.3f}) neither processed nor in a gap")
    for name in NAMES:
        counts.setdefault(name, 0)
    return {"ok": not problems, "counts": dict(counts), "problems": problems,
            "transports": {tr: {n: per[tr][n] for n in PER_TRANSPORT} for tr in TRANSPORTS}}


def summary(result: dict) -> str:
    c = result["counts"]
    line = " ".join(f"{n}={c.get(n, 0)}" for n in NAMES)
    for tr, tc in (result.get("transports") or {}).items():
        line += f" | {tr}: " + " ".join(f"{n}={tc.get(n, 0)}" for n in PER_TRANSPORT)
    return line


def main(argv) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    result = check(read([argv[1]]), read(argv[2:]))
    print(summary(result))
    for p in result["problems"]:
        print(p)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
