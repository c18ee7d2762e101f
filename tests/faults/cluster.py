"""The fault suite's processes, all on loopback: Redis master + replica with
AOF (every write fsynced), each behind a StallingProxy, three Sentinels, N
hubs on Sentinel (`--redis-sentinels`, configured by `manage.py
mizan_hub_config` from fdsite.py), HAProxy in front rendered from
deploy/lb/haproxy.cfg by deploy/lb/render.py. And the faults.

The Sentinels watch the Redis servers through their proxies (each server
announces its proxy's port with `replica-announce-port`), so the master
address every hub and Django get is a proxy: a stall fault freezes the
hubs' links there (the connections their pids own), while Sentinels, the
replication link and the Django publisher keep working.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "deploy" / "lb"))

from hubtest import (Hub, RedisServer, Sentinel, StallingProxy, free_port,  # noqa: E402
                     wait_replica_synced)
from render import Haproxy  # noqa: E402

import fdsite  # noqa: E402

PYTHON = sys.executable
LB_SOURCE = "127.0.0.9"  # HAProxy connects to the hubs from here; they trust it


def log(msg: str) -> None:
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class AnnouncedRedis(RedisServer):
    """A redis-server that tells its master (and so the Sentinels) to reach it
    at its proxy's port, configured as deploy/README.md says a Sentinel setup
    must be: a master refuses writes (NOREPLICAS, which the Django outbox
    retries) while no replica is connected. Without that, a master Sentinel
    has just replaced keeps taking the publisher's writes until it is
    reconfigured (up to ~10 s), and no hub reads them: the suite finds those
    messages lost and those contexts stale."""

    announce_port = 0

    def extra_args(self) -> list[str]:
        return ["--replica-announce-ip", "127.0.0.1",
                "--replica-announce-port", str(self.announce_port),
                "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10",
                "--repl-diskless-sync-delay", "0"]


class FaultHub(Hub):
    """The real hub as the deploy runs it: auth by JWT, the registry and the
    Sentinels from the config file Django wrote, behind HAProxy's PROXY
    header. Quick canaries so a stalled link is noticed in ~3 s."""

    DEFAULTS = {
        "canary_interval_ms": "200",
        "canary_window": "3",
        "drain_window": "2",
        "heal_timeout_ms": "3000",
        "redis_backoff_max_ms": "500",
        "trusted_proxies": LB_SOURCE,
        "proxy_protocol": "true",
        "log_level": "info",
    }


def process_rss_kb(pid: int | None) -> int:
    if not pid:
        return 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        return set()


class Cluster:
    def __init__(self, dir: Path, *, hubs: int = 3, sentinels: int = 3):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n_hubs = hubs
        self.n_sentinels = sentinels
        self.redis: list[AnnouncedRedis] = []
        self.proxies: list[StallingProxy] = []
        self.sentinels: list[Sentinel] = []
        self.hubs: list[FaultHub] = []
        self.lb: Haproxy | None = None
        self.stalling: set[int] | None = None  # hub indexes a stall freezes; None: all
        self.env = dict(os.environ)

    # ---- start and stop

    def hub_pids(self, which=None) -> set[int]:
        pids = set()
        for i, h in enumerate(self.hubs):
            if h.running() and (which is None or i in which):
                pids.add(h.pid)
                pids |= children(h.pid)
        return pids

    def stalled_pids(self) -> set[int]:
        """The hubs whose links a stalled proxy freezes (stall() sets which)."""
        return self.hub_pids(self.stalling)

    def start(self) -> None:
        for name in ("a", "b"):
            r = AnnouncedRedis(self.dir / f"redis-{name}", aof=True)
            r.port = free_port()
            proxy = StallingProxy(r.port, owners=self.hub_pids, targets=self.stalled_pids)
            r.announce_port = proxy.port
            r.start(port=r.port)
            self.redis.append(r)
            self.proxies.append(proxy)
        a, b = self.redis
        b.client().execute_command("REPLICAOF", "127.0.0.1", str(self.proxies[0].port))
        wait_replica_synced(b)
        quorum = self.n_sentinels // 2 + 1
        for i in range(self.n_sentinels):
            self.sentinels.append(Sentinel(self.dir / f"sentinel{i}", self.proxies[0].port,
                                           name=fdsite.MASTER, quorum=quorum,
                                           down_after_ms=5000, failover_timeout_ms=10000))
        self.wait(lambda: all(len(s.replicas()) >= 1 and
                              len(s.client.execute_command("SENTINEL", "sentinels",
                                                           fdsite.MASTER)) >= self.n_sentinels - 1
                              for s in self.sentinels), 40, "the Sentinels to see the replica "
                  "and each other")
        self.env["FAULTS_SENTINELS"] = ",".join(s.addr for s in self.sentinels)
        self.env["FAULTS_DB"] = str(self.dir / "django.sqlite3")
        self.config = self.dir / "hub.conf"
        subprocess.run([PYTHON, "-c", "import fdsite; fdsite.setup(); "
                        "from django.core.management import call_command; "
                        f"call_command('mizan_hub_config', '-o', {str(self.config)!r})"],
                       cwd=HERE, env=self.env, check=True, capture_output=True, timeout=120)
        ports = [free_port() for _ in range(self.n_hubs)]
        for i, port in enumerate(ports):
            hub = FaultHub(self.dir / f"hub{i + 1}", "redis://127.0.0.1:6379/0",
                           config=str(self.config), hub_id=f"hub{i + 1}")
            self.hubs.append(hub)
            hub.start(port=port)
        self.lb = Haproxy(self.dir / "haproxy", free_port(),
                          [f"127.0.0.1:{h.port}" for h in self.hubs], source=LB_SOURCE)
        check = self.lb.check()
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the rendered config: {check.stdout}"
                               f"{check.stderr}")
        self.lb.start()
        self.wait_lb_up()
        log(f"cluster up: redis {[r.port for r in self.redis]} proxies "
            f"{[p.port for p in self.proxies]} sentinels {[s.port for s in self.sentinels]} "
            f"hubs {[h.port for h in self.hubs]} haproxy {self.lb.port}")

    def stop(self) -> None:
        for hub in self.hubs:
            try:
                hub.stop(timeout=5)
            except Exception:
                pass
        if self.lb:
            self.lb.stop()
        for s in self.sentinels:
            try:
                s.stop()
            except Exception:
                pass
        for p in self.proxies:
            p.close()
        for r in self.redis:
            r.kill()

    # ---- state

    @staticmethod
    def wait(cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")

    @property
    def url(self) -> str:
        return self.lb.url

    def master_index(self) -> int:
        """Which Redis (0: a, 1: b) the Sentinels name as the master."""
        port = int(self.sentinels[0].master()[1])
        return [p.port for p in self.proxies].index(port)

    def wait_hubs_ready(self, timeout: float = 60) -> None:
        for hub in self.hubs:
            hub.wait_ready(timeout)

    def wait_lb_up(self, timeout: float = 30) -> None:
        self.wait(lambda: len(self.lb.server_states()) == len(self.hubs) and all(
            s["status"] == "UP" for s in self.lb.server_states().values()), timeout,
            "HAProxy to see every hub UP")

    def rss(self) -> dict[str, int]:
        out = {f"hub{i + 1}": process_rss_kb(h.pid if h.running() else None)
               for i, h in enumerate(self.hubs)}
        for name, r in zip("ab", self.redis):
            out[f"redis_{name}"] = process_rss_kb(
                r.proc.pid if r.proc and r.proc.poll() is None else None)
        return out

    def connections(self) -> dict[str, int | str]:
        """Each hub's open WebSockets (its mizan_hub_connections; "" when it
        does not answer)."""
        out = {}
        for i, h in enumerate(self.hubs):
            try:
                out[f"hub{i + 1}"] = int(h.metric("mizan_hub_connections")) if h.running() else ""
            except (OSError, ValueError, AssertionError):
                out[f"hub{i + 1}"] = ""
        return out

    # ---- faults

    def kill_hub(self, i: int) -> str:
        hub = self.hubs[i]
        hub.kill()
        time.sleep(1.0)  # its clients reconnect elsewhere meanwhile
        hub.start(port=hub.port)
        self.wait_lb_up()
        return f"SIGKILL hub{i + 1}, restarted"

    def restart_redis(self) -> str:
        i = self.master_index()
        r = self.redis[i]
        r.kill()
        time.sleep(0.5)
        r.start(port=r.port)
        self.wait_hubs_ready()
        return f"SIGKILL redis-{'ab'[i]} (the master), restarted from its AOF"

    def lose_redis_data(self) -> str:
        """The master comes back empty (its AOF deleted while it was down);
        the replica resyncs from it and is empty too: every version hash and
        channel position starts a new epoch."""
        i = self.master_index()
        r = self.redis[i]
        r.kill()
        for name in os.listdir(r.dir):
            if name.startswith("appendonly") or name.endswith(".rdb"):
                path = r.dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        r.start(port=r.port)
        self.wait_hubs_ready()
        return f"SIGKILL redis-{'ab'[i]} (the master), restarted with no data"

    def failover(self) -> str:
        old = self.master_index()
        self.sentinels[0].client.execute_command("SENTINEL", "FAILOVER", fdsite.MASTER)
        self.wait(lambda: all(int(s.master()[1]) != self.proxies[old].port
                              for s in self.sentinels), 60, "every Sentinel to name the new master")
        self.wait(lambda: self.redis[old].client().info("replication")["role"] == "slave", 60,
                  "the old master to be a replica")
        self.wait_hubs_ready()
        return f"SENTINEL FAILOVER: redis-{'ab'[old]} -> redis-{'ab'[1 - old]}"

    def roll(self) -> str:
        for hub in self.hubs:
            hub.signal(signal.SIGTERM)
            rc = hub.wait(float(hub.settings["drain_window"]) + 10)
            if rc is None:
                raise RuntimeError(f"{hub.dir.name} did not exit after its drain")
            hub.start(port=hub.port)
            self.wait_lb_up()
        return "rolled every hub (SIGTERM drain, restart) one by one"

    def stall(self, seconds: float = 6.0, hub: int | None = None) -> str:
        """Every hub's links to the master (or one hub's: a partition the
        others do not share) stop passing bytes, half-open, for `seconds`."""
        i = self.master_index()
        proxy = self.proxies[i]
        self.stalling = None if hub is None else {hub}
        proxy.stall()
        time.sleep(seconds)
        proxy.resume()
        self.stalling = None
        self.wait_hubs_ready()
        who = "every hub" if hub is None else f"hub{hub + 1}"
        return f"stalled {who}<->redis-{'ab'[i]} links for {seconds:.0f} s (half-open)"

    def stall_one(self, hub: int = 1) -> str:
        return self.stall(hub=hub)
