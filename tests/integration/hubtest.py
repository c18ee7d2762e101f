"""Helpers for the mizan-hub integration tests: a real redis-server and the
real hub on free loopback ports, WebSocket clients (the `websockets` package
and a raw-socket one for the slow consumer), Redis envelopes per SPEC 11.

Also a Sentinel (and a master + replica + Sentinel setup) and a TCP proxy
that stalls links without closing them, shared by the integration tests
and the fault suite (tests/faults).

Nothing here talks to anything outside 127.0.0.0/8. Every wait has a
deadline; every process started here is stopped by the fixtures in
conftest.py even when a test fails.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import redis
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "django"))
from mizan_hub.protocol import bucket, canonical_key  # noqa: E402,F401  (re-exported; stdlib only)

HUB_BIN = os.environ.get("MH_HUB_BIN") or str(ROOT / "build" / "bin" / "mizan-hub")
if not os.path.isabs(HUB_BIN):
    HUB_BIN = str((ROOT / HUB_BIN).resolve())
SANITIZED = bool(os.environ.get("MH_HUB_BIN"))
# Deadlines (not assertions about the hub's own windows) stretch under ASan.
SLOW = 3.0 if SANITIZED else 1.0
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
PREFIX = "mizan:"
EVENTS = PREFIX + "events"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def insecure_tls() -> ssl.SSLContext:
    """A client context for the hub's TLS listener (the test certificate in
    tests/integration/data is self-signed)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def hub_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIZAN_HUB_")}
    if SANITIZED:
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1"
    return env


def sanitizer_report(text: str) -> str | None:
    """The sanitizer report in a hub's stderr, or None."""
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            return text[max(0, i - 200): i + 4000]
    return None


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """Runs the hub binary to completion (for --help and bad settings)."""
    return subprocess.run([HUB_BIN, *args], env=hub_env(), capture_output=True, text=True,
                          timeout=timeout * SLOW, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- redis-server


class RedisServer:
    """One redis-server on a free loopback port, its data in `dir`. With
    aof=True every write is fsynced, so a SIGKILL loses nothing and a restart
    from the same dir has the same data."""

    def __init__(self, dir: Path, aof: bool = False):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.aof = aof
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, port: int | None = None) -> None:
        for attempt in range(5):
            self.port = port or free_port()
            self._log = open(self.dir / "redis.log", "ab")
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--protected-mode", "yes", "--daemonize", "no", "--dir", str(self.dir),
                 "--save", "", "--appendonly", "yes" if self.aof else "no",
                 "--appendfsync", "always", "--loglevel", "warning", "--logfile", "",
                 "--unixsocket", "", "--databases", "1", *self.extra_args()],
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
            deadline = time.monotonic() + 10 * SLOW
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if self.client().ping():
                        return
                except redis.RedisError:
                    time.sleep(0.02)
            self.kill()
            if port:  # a fixed port (restart) that would not come up: no retry elsewhere
                break
        raise RuntimeError(f"redis-server did not start: {self.log_tail()}")

    def extra_args(self) -> list[str]:
        """More redis-server arguments (a later one wins: `--port 0` turns the
        plain port off in a subclass that serves TLS on self.port)."""
        return []

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5, socket_connect_timeout=2, **kw)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL and wait: the port is free when this returns."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._log:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log:
            self._log.close()
            self._log = None

    def log_tail(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


# ---------------------------------------------------------------- Sentinel


class Sentinel:
    """One redis-sentinel on a free loopback port watching the master named
    `name` at 127.0.0.1:`master_port` (which may be a proxy in front of it).
    `quorum` Sentinels must agree it is down; several Sentinels of one master
    find each other through it."""

    def __init__(self, dir, master_port: int, *, name: str = "mymaster", quorum: int = 1,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
            f"sentinel failover-timeout {name} {failover_timeout_ms}\n" + self.extra_conf())
        with open(self.dir / "log", "ab") as log:
            self.proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.client = self.make_client()
        deadline = time.monotonic() + 10 * SLOW
        while time.monotonic() < deadline:
            try:
                if self.client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("sentinel did not start")

    def extra_conf(self) -> str:
        """More sentinel.conf lines (a later one wins: test_redis_tls serves TLS)."""
        return ""

    def make_client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def master(self):
        return self.client.execute_command("SENTINEL", "get-master-addr-by-name", self.name)

    def replicas(self) -> list:
        return self.client.execute_command("SENTINEL", "replicas", self.name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.client.close()


def wait_replica_synced(replica: RedisServer, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout * SLOW
    while replica.client().info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not sync")
        time.sleep(0.05)


def wait_sentinel_sees_replicas(sentinel: Sentinel, n: int = 1, timeout: float = 20) -> None:
    """The Sentinel learns replicas from the master's INFO (every ~10 s at
    first): a failover before it lists them has nobody to promote."""
    deadline = time.monotonic() + timeout * SLOW
    while len(sentinel.replicas()) < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the Sentinel never saw the replica")
        time.sleep(0.2)


def sentinel_cluster(dir: Path) -> tuple[RedisServer, RedisServer, Sentinel]:
    """A master, its replica and one Sentinel that sees both (stop them in
    reverse order)."""
    master = RedisServer(Path(dir) / "master")
    master.start()
    replica = RedisServer(Path(dir) / "replica")
    replica.start()
    replica.client().execute_command("REPLICAOF", "127.0.0.1", str(master.port))
    wait_replica_synced(replica)
    sentinel = Sentinel(Path(dir) / "sentinel", master.port)
    wait_sentinel_sees_replicas(sentinel)
    return master, replica, sentinel


# ---------------------------------------------------------------- stalling proxy


def _socket_owner(local_port: int, remote_port: int, pids) -> int | None:
    """The pid among `pids` holding the loopback TCP socket 127.0.0.1:local_port
    -> 127.0.0.1:remote_port (from /proc: the socket's inode, then the
    process whose fd table has it)."""
    want_local = f"0100007F:{local_port:04X}"
    want_remote = f"0100007F:{remote_port:04X}"
    inode = None
    try:
        with open("/proc/net/tcp") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 9 and fields[1] == want_local and fields[2] == want_remote:
                    inode = fields[9]
                    break
    except OSError:
        return None
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


class StallingProxy:
    """A TCP proxy in front of a redis-server that can stall links without
    closing them: a stalled link passes nothing either way and stays open
    (half-open, as a dead network path looks), until resume() passes on
    what waited. Which links stall: `links`, the kinds "sub" (its first
    command is a SUBSCRIBE) and "cmd" (every other); and, when `owners` is
    given (a callable returning pids), only connections those processes
    opened -- so a Sentinel or a publisher behind the same proxy keeps
    working while the hubs' links stall -- or, with `targets` (a callable
    returning some of those pids), only the connections of those. A
    connection whose upstream cannot be reached is closed at once (as a
    refused connect)."""

    def __init__(self, upstream_port: int, links=("cmd", "sub"), owners=None, port: int = 0,
                 targets=None):
        self.upstream_port = upstream_port
        self.links = set(links)
        self.owners = owners
        self.targets = targets or owners
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.stopping = False
        self.socks: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.stalled.set()

    def resume(self, lose: bool = False) -> None:
        """Links pass bytes again; with `lose`, the links of the stall are
        cut first instead: a dead path that comes back delivers nothing it
        carried (what was written into it is lost), only new connections."""
        if lose:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass
            self.socks = []
        self.stalled.clear()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client_side, peer = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client_side.close()
                continue
            owner = None
            if self.owners is not None:
                owner = _socket_owner(peer[1], self.port, self.owners())
            self.socks += [client_side, upstream]
            threading.Thread(target=self._pump, args=(client_side, upstream, owner),
                             daemon=True).start()

    def _stalls(self, kind, owner) -> bool:
        if not self.stalled.is_set() or kind not in self.links:
            return False
        return self.owners is None or (owner is not None and owner in self.targets())

    def _pump(self, client_side: socket.socket, upstream: socket.socket, owner) -> None:
        kind = None  # "sub" or "cmd", from the client's first bytes
        held = b""
        try:
            while not self.stopping:
                if kind is not None and self._stalls(kind, owner):
                    time.sleep(0.02)  # nothing moves, nothing closes
                    continue
                if held:
                    upstream.sendall(held)
                    held = b""
                ready, _, _ = select.select([client_side, upstream], [], [], 0.02)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client_side:
                        if kind is None:
                            kind = "sub" if b"SUBSCRIBE" in data.upper() else "cmd"
                        if self._stalls(kind, owner):
                            held += data
                        else:
                            upstream.sendall(data)
                    else:
                        client_side.sendall(data)
        except (OSError, ValueError):  # ValueError: a socket resume(lose=True) closed
            pass
        finally:
            for s in (client_side, upstream):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.stopping = True
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------- the hub


class Hub:
    """The real mizan-hub. `settings` are flag names without dashes
    (underscores allowed) -> values; the defaults make tests fast (frequent
    canaries, no drain window) and can be overridden."""

    DEFAULTS = {
        "allow_anonymous": None,
        "canary_interval_ms": "100",
        "canary_window": "2",
        "drain_window": "0",
        "redis_backoff_max_ms": "500",
        "log_level": "info",
    }

    def __init__(self, dir: Path, redis_url: str, **settings):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis_url = redis_url
        self.settings = dict(self.DEFAULTS)
        self.settings.update({k: (None if v is True else str(v)) for k, v in settings.items()})
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.term_sent = False
        self.stderr_path = self.dir / "hub.stderr"
        self.stdout_path = self.dir / "hub.stdout"
        self._files = []

    # -- process

    def argv(self) -> list[str]:
        args = [HUB_BIN, "--listen", f"127.0.0.1:{self.port}", "--redis", self.redis_url]
        for k, v in self.settings.items():
            args.append("--" + k.replace("_", "-"))
            if v is not None:
                args.append(v)
        return args

    def start(self, wait_ready: bool = True, port: int | None = None) -> "Hub":
        """Starts the hub on a free port, or on `port` (a restart behind a
        balancer that knows the old one: no retry elsewhere)."""
        last = ""
        for attempt in range(1 if port else 3):
            self.port = port or free_port()
            out = open(self.stdout_path, "ab")
            err = open(self.stderr_path, "ab")
            self._files = [out, err]
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=hub_env(),
                                         start_new_session=True)
            deadline = time.monotonic() + 10 * SLOW
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    status, _, _ = self.http("/healthz", timeout=1)
                    if status == 200:
                        break
                except OSError:
                    time.sleep(0.02)
            if self.proc.poll() is None:
                break
            self.returncode = self.proc.returncode
            last = self.stderr_text()[-2000:]
            if "in use" not in last.lower() and "bind" not in last.lower():
                break
        if self.proc.poll() is not None:
            raise AssertionError(f"mizan-hub exited at start with {self.proc.returncode}: {last}")
        if wait_ready:
            self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running():
            if sig == signal.SIGTERM:
                self.term_sent = True
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """Waits for the process to exit; its exit code, or None at the deadline."""
        try:
            self.returncode = self.proc.wait(timeout)
            self._close_files()
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait (drain window + slack), SIGKILL the whole process group
        if it is still there. Returns the exit code of a graceful exit, None
        when it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            self._kill_group()
            self._close_files()
            return self.returncode
        if timeout is None:
            timeout = (float(self.settings.get("drain_window") or 0) + 5) * SLOW
            if self.term_sent:  # the test sent one and waited already
                timeout = 2
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self._kill_group()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()  # stray workers of a supervisor
        self._close_files()
        return rc

    def kill(self) -> None:
        self._kill_group()
        if self.proc:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _close_files(self) -> None:
        for f in self._files:
            try:
                f.close()
            except OSError:
                pass
        self._files = []

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def sanitizer_report(self) -> str | None:
        return sanitizer_report(self.stderr_text())

    # -- HTTP

    @property
    def tls(self) -> ssl.SSLContext | None:
        """A client context when the hub serves TLS (--tls-cert), else None."""
        return insecure_tls() if self.settings.get("tls_cert") else None

    def http(self, path: str, timeout: float = 3) -> tuple[int, dict, str]:
        if self.tls:  # the public port speaks TLS (the admin one never does)
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.tls)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in resp.getheaders()}
            return resp.status, headers, body
        finally:
            conn.close()

    def readyz(self) -> tuple[int, str]:
        status, _, body = self.http("/readyz", timeout=2)
        return status, body

    def wait_ready(self, timeout: float = 10, want: int = 200) -> None:
        deadline = time.monotonic() + timeout * SLOW
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(
                    f"hub exited ({self.proc.returncode}): {self.stderr_text()[-2000:]}")
            try:
                last = self.readyz()
                if last[0] == want:
                    return
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"/readyz did not answer {want} within {timeout * SLOW:.0f} s; "
                             f"last answer {last!r}")

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics without labels, name -> value."""
        status, _, body = self.http("/metrics")
        assert status == 200, (status, body)
        out = {}
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, float("nan"))

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/"


# ---------------------------------------------------------------- Redis side


def envelope_invalidate(entries, versions, ts=None) -> str:
    env = {"v": 1, "kind": "invalidate", "invalidate": entries, "versions": versions}
    if ts is not None:
        env["ts"] = ts
    return json.dumps(env, ensure_ascii=False, separators=(",", ":"))


def publish_invalidate(r: redis.Redis, entries, versions, ts=None) -> int:
    return r.publish(EVENTS, envelope_invalidate(entries, versions, ts))


def envelope_message(channel, params, data, seq, epoch, type_="message", ts=None) -> str:
    env = {"v": 1, "kind": "message", "channel": channel, "params": params, "type": type_,
           "data": data, "seq": seq, "epoch": epoch}
    if ts is not None:
        env["ts"] = ts
    return json.dumps(env, ensure_ascii=False, separators=(",", ":"))


def hub_channel(hub_id: str) -> str:
    return f"{PREFIX}hub:{hub_id}"


def send_to_conn(r: redis.Redis, hub_id: str, conn: str, frame: dict) -> int:
    """Plays the Django worker: a `send` envelope on the per-hub channel."""
    return r.publish(hub_channel(hub_id), json.dumps(
        {"v": 1, "kind": "send", "conn": conn, "frame": frame}, separators=(",", ":")))


def now_ms() -> float:
    return time.time() * 1000.0


# ---------------------------------------------------------------- WebSocket


class Timeout(AssertionError):
    pass


class Client:
    """A WebSocket client of the hub that reads JSON frames with deadlines."""

    def __init__(self, ws, welcome: dict):
        self.ws = ws
        self.welcome = welcome
        self._ref = 0

    @property
    def hub_id(self) -> str:
        return self.welcome["welcome"]["hub"]

    @property
    def conn(self) -> str:
        return self.welcome["welcome"]["conn"]

    def next_ref(self) -> str:
        self._ref += 1
        return f"r{self._ref}"

    async def send(self, frame) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else
                           json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

    async def recv_text(self, timeout: float = 5) -> str:
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout * SLOW)
        except asyncio.TimeoutError:
            raise Timeout(f"{self.conn}: no frame within {timeout * SLOW:.1f} s") from None
        assert isinstance(msg, str), f"hub sent a binary frame: {msg!r}"
        return msg

    async def recv(self, timeout: float = 5) -> dict:
        text = await self.recv_text(timeout)
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"hub sent a frame that is not JSON: {text!r}") from None

    async def expect_nothing(self, seconds: float) -> None:
        try:
            msg = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"{self.conn}: unexpected frame {msg!r}")

    async def ping_barrier(self, timeout: float = 5) -> list[dict]:
        """Sends a ping and returns every frame that arrived before its pong."""
        ref = self.next_ref()
        await self.send({"action": "ping", "ref": ref})
        before = []
        deadline = time.monotonic() + timeout * SLOW
        while True:
            frame = await self.recv(max(0.01, (deadline - time.monotonic()) / SLOW))
            if frame == {"pong": True, "ref": ref}:
                return before
            before.append(frame)

    async def subscribe(self, *, context=None, channel=None, params=None, since=None,
                        ref=None, timeout: float = 5) -> dict:
        """Subscribes and returns the ack (asserting nothing came before it)."""
        frame = {"action": "subscribe"}
        if context is not None:
            frame["context"] = context
        if channel is not None:
            frame["channel"] = channel
        if params is not None:
            frame["params"] = params
        if since is not None:
            frame["since"] = since
        frame["ref"] = ref if ref is not None else self.next_ref()
        await self.send(frame)
        ack = await self.recv(timeout)
        assert ack.get("subscribed") is True and ack.get("ref") == frame["ref"], \
            f"sent {frame}, expected a subscribed ack, got {ack}"
        return ack

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass

    async def wait_closed(self, timeout: float) -> tuple[int | None, str | None]:
        """Reads until the hub closes; returns (code, reason) of its close frame."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"{self.conn}: not closed within {timeout:.1f} s")
                await asyncio.wait_for(self.ws.recv(), left)
        except asyncio.TimeoutError:
            raise Timeout(f"{self.conn}: not closed within {timeout:.1f} s") from None
        except ConnectionClosed as e:
            return (e.rcvd.code if e.rcvd else None), (e.rcvd.reason if e.rcvd else None)


async def connect(hub: Hub | str, path: str = "/", timeout: float = 5, **kw) -> Client:
    url = (hub.ws_url if isinstance(hub, Hub) else hub).rstrip("/") + path
    if isinstance(hub, Hub) and hub.tls and "ssl" not in kw:
        kw["ssl"] = hub.tls
    ws = await ws_connect(url, compression=None, proxy=None, ping_interval=None,
                          max_size=None, max_queue=100000, open_timeout=timeout * SLOW,
                          close_timeout=3, **kw)
    try:
        text = await asyncio.wait_for(ws.recv(), timeout * SLOW)
    except asyncio.TimeoutError:
        await ws.close()
        raise Timeout("no welcome frame") from None
    welcome = json.loads(text)
    assert "welcome" in welcome, f"first frame is not a welcome: {text}"
    return Client(ws, welcome)


def run(coro, timeout: float = 30):
    """Runs a test coroutine on a fresh loop, bounded in time."""
    async def bounded():
        try:
            return await asyncio.wait_for(coro, timeout * SLOW)
        except asyncio.TimeoutError:
            raise Timeout(f"test body did not finish within {timeout * SLOW:.0f} s") from None
    return asyncio.run(bounded())


async def poll(fn, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Calls fn() (sync) until it returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise Timeout(f"{what} not reached within {timeout * SLOW:.1f} s (last: {last!r})")


# ---------------------------------------------------------------- raw socket client


class RawWS:
    """A blocking WebSocket client on a raw socket with a small receive
    buffer: it can stop reading, which `websockets` never does."""

    def __init__(self, port: int, rcvbuf: int = 4096, path: str = "/", tls=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5 * SLOW)
        self.sock.connect(("127.0.0.1", port))
        if tls is not None:  # an ssl.SSLContext: the hub's own TLS listener
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_text(self, text: str | bytes, opcode: int = 1) -> None:
        payload = text.encode() if isinstance(text, str) else text
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):  # over TLS: EOF without close_notify
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv_frame(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame, None at EOF/reset."""
        if not self._need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if not self._need(4):
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if not self._need(10):
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not self._need(off + n):
            return None
        payload = self.buf[off: off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def recv_json(self) -> dict:
        frame = self.recv_frame()
        assert frame is not None, "connection closed"
        assert frame[0] == 1, f"not a text frame: {frame!r}"
        return json.loads(frame[1])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- Server-Sent Events client


class SseParser:
    """The event stream format of the HTML standard, a line at a time, as an
    `EventSource` reads it: `data:` lines joined with LF, `id:` (kept as
    `last_id`, what a reconnect sends as Last-Event-ID), `:` comments
    counted. The blocking SseStream below and the fault suite's asyncio
    clients (tests/faults/clients.py) both read streams with it."""

    def __init__(self, last_id: str | None = None):
        self.last_id = last_id
        self.comments = 0
        self.data: list[str] = []
        self.ident: str | None = None

    def line(self, raw: bytes) -> dict | None:
        """Feeds one line (its CR/LF may still be on it); returns
        {"id": the event's own id or None, "data": its JSON parsed} when the
        line ends an event with data."""
        text = raw.rstrip(b"\r\n").decode("utf-8")
        if text == "":
            data, ident = self.data, self.ident
            self.data, self.ident = [], None
            if not data:
                return None
            if ident is not None:
                self.last_id = ident
            return {"id": ident, "data": json.loads("\n".join(data))}
        if text.startswith(":"):
            self.comments += 1
            return None
        field, _, value = text.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self.data.append(value)
        elif field == "id":
            self.ident = value
        return None


class SseStream:
    """A blocking EventSource (SPEC 6.1) on a raw socket: GET /sse with the
    query's subscriptions, the events parsed as the HTML standard says
    (`id:`, `data:` lines joined with LF, `:` comments). It can stop reading
    (small rcvbuf) and send what a browser sends on reconnect
    (Last-Event-ID). `status`/`headers` are the response's; a refused stream
    has its body in `body`."""

    def __init__(self, port: int, subscribe=(), token: str | None = None,
                 headers: dict | None = None, last_event_id: str | None = None,
                 rcvbuf: int | None = None, query: list | None = None, tls=None):
        args = [("subscribe", s if isinstance(s, str) else
                 json.dumps(s, separators=(",", ":"), ensure_ascii=False)) for s in subscribe]
        if token is not None:
            args.append(("token", token))
        args += query or []
        target = "/sse" + ("?" + urllib.parse.urlencode(args, quote_via=urllib.parse.quote)
                           if args else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5 * SLOW)
        self.sock.connect(("127.0.0.1", port))
        if tls is not None:  # an ssl.SSLContext: the hub's own TLS listener
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"stream closed before its head: {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in
                        (h.split(":", 1) for h in hdrs)}
        self.body = ""
        if self.status != 200:
            self.body = self._read_rest().decode("utf-8", "replace")
        self.parser = SseParser(last_event_id)
        self.stream = self.conn = self.secret = None

    def _read_rest(self) -> bytes:
        data = self.buf
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except OSError:
            pass
        return data

    def next_event(self, timeout: float = 5) -> dict | None:
        """{"id": str|None, "data": parsed JSON} of the next event (counting
        comments on the way), None at EOF/reset."""
        self.sock.settimeout(timeout * SLOW)
        while True:
            while b"\n" not in self.buf:
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionResetError, socket.timeout, ssl.SSLError) as e:
                    if isinstance(e, socket.timeout):
                        raise Timeout(f"no event within {timeout * SLOW:.1f} s") from e
                    return None
                if not chunk:
                    return None
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            ev = self.parser.line(line)
            if ev is not None:
                frame = ev["data"]
                if "stream" in frame:
                    self.stream = frame["stream"]
                    self.conn, self.secret = frame["stream"]["conn"], frame["stream"]["secret"]
                return ev

    @property
    def last_id(self) -> str | None:
        return self.parser.last_id

    @property
    def comments(self) -> int:
        return self.parser.comments

    def recv(self, timeout: float = 5) -> dict:
        ev = self.next_event(timeout)
        assert ev is not None, "stream ended"
        return ev["data"]

    def until(self, pred, timeout: float = 5, limit: int = 1000) -> list[dict]:
        """Frames up to and including the first one pred() accepts."""
        got = []
        for _ in range(limit):
            got.append(self.recv(timeout))
            if pred(got[-1]):
                return got
        raise AssertionError(f"no matching frame in {got!r}")

    def post(self, frame, secret: str | None = None, conn: str | None = None,
             body: bytes | None = None, port: int | None = None,
             n: int | str | None = None) -> tuple[int, str]:
        """POST /sse/<conn>?secret=[&n=]: (status, body)."""
        if body is None:
            body = (frame if isinstance(frame, str) else json.dumps(frame)).encode()
        return sse_post(port or self.port, conn or self.conn,
                        self.secret if secret is None else secret, body, n)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def sse_post(port: int, conn: str, secret: str | None, body: bytes,
             n: int | str | None = None) -> tuple[int, str]:
    path = f"/sse/{urllib.parse.quote(conn)}"
    if secret is not None:
        path += "?secret=" + urllib.parse.quote(secret)
    if n is not None:
        path += ("&" if secret is not None else "?") + f"n={n}"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5 * SLOW)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "text/plain"})
        resp = c.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        c.close()
