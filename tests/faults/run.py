#!/usr/bin/env python3
"""The fault suite: real processes on loopback (cluster.py), a steady load
of Django publishes (publisher.py) and clients through HAProxy (clients.py:
WebSockets, and a third of them on Server-Sent Events), faults one after the other while the load runs, then the
checker (checker.py): zero stale contexts, zero silent losses.

    tests/faults/run.py                 # the short version (what ci-test runs)
    tests/faults/run.py --long          # more clients, every fault three times
    tests/faults/run.py --duration 3600 --fault-every 240 --rss-csv rss.csv  # bench/soak

Prints the counts (events, deliveries, duplicates, reconnects, heals, gaps,
stale, lost; then per transport) and every problem; exits 1 when there is one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from checker import check, read, summary  # noqa: E402
from clients import add_transport_options  # noqa: E402
from cluster import PYTHON, Cluster, log  # noqa: E402

FAULTS = ("kill_hub", "restart_redis", "lose_redis_data", "failover", "roll", "stall",
          "stall_one")
#: Faults run.py knows besides the default sequence (none today).
MORE_FAULTS: tuple = ()


def options(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", action="store_true",
                    help="500 clients in two processes, every fault three times")
    ap.add_argument("--clients", type=int, help="clients in all (default 200, --long 500)")
    ap.add_argument("--processes", type=int, help="client processes (default 1, --long 2)")
    ap.add_argument("--rate", type=float, default=20.0, help="publisher calls per second")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help=f"comma-separated, in order (of {', '.join(FAULTS + MORE_FAULTS)})")
    ap.add_argument("--rounds", type=int, help="times through the fault list (--long: 3)")
    ap.add_argument("--settle", type=float, default=6.0, help="seconds of load after each fault")
    ap.add_argument("--duration", type=float,
                    help="run this many seconds instead, a fault every --fault-every s (soak)")
    ap.add_argument("--fault-every", type=float, default=240.0)
    ap.add_argument("--kill-hubs", default="",
                    help="comma-separated hub numbers kill_hub takes turns on (default all)")
    ap.add_argument("--rss-csv", help="sample the RSS of every hub and Redis into this CSV")
    ap.add_argument("--rss-every", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--dir", help="work directory (kept); default a temporary one, removed "
                                  "when the run passes")
    add_transport_options(ap)  # handed on to clients.py as they are
    ap.add_argument("--json", help="write the result (counts, problems, faults) here")
    opts = ap.parse_args(argv)
    if opts.clients is None:
        opts.clients = 500 if opts.long else 200
    if opts.processes is None:
        opts.processes = 2 if opts.long else 1
    if opts.rounds is None:
        opts.rounds = 3 if opts.long else 1
    return opts


class Sampler(threading.Thread):
    def __init__(self, cluster: Cluster, path: str, every: float):
        super().__init__(daemon=True)
        self.cluster, self.path, self.every = cluster, path, every
        self.stopping = threading.Event()
        self.t0 = time.time()

    def run(self) -> None:
        with open(self.path, "w", newline="") as f:
            w = None
            while not self.stopping.is_set():
                row = self.cluster.rss()
                conns = self.cluster.connections()
                if w is None:
                    w = csv.writer(f)
                    w.writerow(["unix", "seconds", *[f"{k}_kb" for k in row],
                                *[f"{k}_connections" for k in conns]])
                now = time.time()
                w.writerow([round(now, 1), round(now - self.t0, 1), *row.values(),
                            *conns.values()])
                f.flush()
                self.stopping.wait(self.every)


def run(opts) -> dict:
    work = Path(opts.dir) if opts.dir else Path(tempfile.mkdtemp(prefix="mizan-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(work)
    procs: list[subprocess.Popen] = []
    sampler = None
    done_faults: list[dict] = []
    started = time.monotonic()
    result: dict = {"ok": False, "problems": ["did not get to the checker"], "counts": {}}
    try:
        cluster.start()
        if opts.rss_csv:
            sampler = Sampler(cluster, opts.rss_csv, opts.rss_every)
            sampler.start()
        pub_log = work / "publisher.jsonl"
        publisher = subprocess.Popen(
            [PYTHON, str(HERE / "publisher.py"), "--log", str(pub_log), "--rate", str(opts.rate),
             "--users", str(opts.users), "--seed", str(opts.seed)],
            env=cluster.env, cwd=HERE, stdout=open(work / "publisher.out", "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(publisher)
        client_logs = []
        per = -(-opts.clients // opts.processes)
        for p in range(opts.processes):
            n = min(per, opts.clients - p * per)
            path = work / f"clients{p}.jsonl"
            client_logs.append(path)
            args = [PYTHON, str(HERE / "clients.py"), "--url", cluster.url, "--clients", str(n),
                    "--first", str(p * per), "--users", str(opts.users), "--log", str(path),
                    "--seed", str(opts.seed + p), "--sse-share", str(opts.sse_share),
                    "--sse-bare-share", str(opts.sse_bare_share)]
            if opts.no_resume:
                args += ["--no-resume", opts.no_resume]
            procs.append(subprocess.Popen(args, cwd=HERE, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=open(work / f"clients{p}.err", "w"),
                                          text=True, start_new_session=True))
        clients = procs[1:]
        for c in clients:
            c.stdout.readline()  # "started"
        log(f"{opts.clients} clients ({opts.sse_share} on SSE) in {opts.processes} process(es), "
            f"publisher at "
            f"{opts.rate}/s, seed {opts.seed}, work dir {work}")
        time.sleep(8)  # every client connected and subscribed, events flowing

        faults = [f for f in opts.faults.split(",") if f]
        for f in faults:
            if f not in FAULTS + MORE_FAULTS:
                raise SystemExit(f"unknown fault {f!r} (known: {', '.join(FAULTS + MORE_FAULTS)})")
        hub_turn = 0

        def do(name: str) -> None:
            nonlocal hub_turn
            t = time.time()
            if name == "kill_hub":
                turns = [int(h) - 1 for h in opts.kill_hubs.split(",") if h] or \
                    list(range(len(cluster.hubs)))
                what = cluster.kill_hub(turns[hub_turn % len(turns)])
                hub_turn += 1
            elif name == "stall_one":
                what = cluster.stall_one(hub_turn % len(cluster.hubs))
                hub_turn += 1
            else:
                what = getattr(cluster, name)()
            done_faults.append({"fault": name, "t": t, "seconds": round(time.time() - t, 1),
                                "what": what})
            log(f"fault {len(done_faults)}: {what} ({time.time() - t:.1f} s)")

        if opts.duration:
            end = started + opts.duration
            i = 0
            while time.monotonic() + opts.fault_every < end:
                time.sleep(opts.fault_every)
                do(faults[i % len(faults)])
                i += 1
            time.sleep(max(0.0, end - time.monotonic()))
        else:
            for _ in range(opts.rounds):
                for f in faults:
                    do(f)
                    time.sleep(opts.settle)

        log("stopping the publisher (it drains its outbox)")
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(120)
        cluster.wait_hubs_ready()
        time.sleep(3)  # the last events reach every hub and client
        log("clients: finishing (every subscription acked, then a ping barrier)")
        for c in clients:
            c.stdin.write("finish\n")
            c.stdin.flush()
        for c in clients:
            try:
                c.wait(120)
            except subprocess.TimeoutExpired:
                c.kill()
        if sampler:
            sampler.stopping.set()
            sampler.join()
            sampler = None
        result = check(read([pub_log]), read(client_logs))
    finally:
        if sampler:
            sampler.stopping.set()
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        cluster.stop()
    # a sanitizer build (MH_HUB_BIN=build-asan/...): any report in a hub's
    # stderr (every restart appends there) fails the run
    for hub in cluster.hubs:
        report = hub.sanitizer_report()
        if report:
            result["ok"] = False
            result["problems"].append(f"sanitizer report in {hub.stderr_path}:\n{report}")
    result["faults"] = done_faults
    result["seconds"] = round(time.monotonic() - started, 1)
    result["dir"] = str(work)
    if result["ok"] and not opts.dir:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv=None) -> int:
    opts = options(argv)
    result = run(opts)
    print(summary(result) + f" faults={len(result['faults'])} seconds={result['seconds']}")
    for f in result["faults"]:
        print(f"fault: {f['what']} ({f['seconds']} s)")
    for p in result["problems"]:
        print(p)
    if not result["ok"]:
        print(f"logs kept in {result['dir']}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
