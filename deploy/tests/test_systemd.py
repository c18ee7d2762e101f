"""deploy/systemd/mizan-hub.service and deploy/mizan-hub.conf.

No systemd runs as PID 1 on this machine, so the unit is checked by
`systemd-analyze verify` (systemd 252, Debian 12) and by reading it; the
example config file is run for real by the hub it configures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import BASE_IMAGE, DEPLOY, HUB_BIN, ensure_base, podman_skip_reason, sh
from hubtest import Hub, connect, free_port, run

UNIT = DEPLOY / "systemd" / "mizan-hub.service"
CONF = DEPLOY / "mizan-hub.conf"
# The hub exits at most this long after drain_window (server/src/main.c:
# drain deadline = drain_window * 1000 + 3000 ms).
HUB_DRAIN_SLACK_S = 3


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """section -> [(key, value)] in order; keys may repeat, as in systemd."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, [])
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"not a unit line: {raw!r}"
        out[section].append((key.strip(), value.strip()))
    return out


def one(unit, section: str, key: str) -> str:
    values = [v for k, v in unit[section] if k == key]
    assert len(values) == 1, f"[{section}] {key}: expected once, found {values}"
    return values[0]


def timespan_s(value: str) -> float:
    """systemd.time(7) spans: '30', '30s', '1min 30s', '2m', '500ms'."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600,
             "hr": 3600}
    if re.fullmatch(r"\d+", value):
        return float(value)
    total, pos = 0.0, 0
    for m in re.finditer(r"\s*(\d+)\s*([a-z]+)", value):
        assert m.start() == pos and m.group(2) in units, f"bad time span {value!r}"
        total += int(m.group(1)) * units[m.group(2)]
        pos = m.end()
    assert pos == len(value) and pos, f"bad time span {value!r}"
    return total


def conf_settings(path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def verify(tmp_path, text: str) -> subprocess.CompletedProcess:
    """systemd-analyze verify on a copy whose ExecStart names the binary we
    built (verify insists the executable exists)."""
    unit = tmp_path / "mizan-hub.service"
    unit.write_text(text.replace("/usr/local/bin/mizan-hub", HUB_BIN))
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    r = verify(tmp_path, UNIT.read_text())
    assert r.returncode == 0 and "mizan-hub.service" not in r.stdout + r.stderr, \
        r.stdout + r.stderr


def test_systemd_analyze_verify_would_see_a_mistake(tmp_path):
    # The check above can fail: verify reports a misspelt option in this unit.
    r = verify(tmp_path, UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strikt"))
    out = r.stdout + r.stderr
    assert "mizan-hub.service:" in out and "strikt" in out, out


def test_stop_timeout_is_longer_than_the_drain():
    unit = parse_unit(UNIT.read_text())
    drain = int(conf_settings(CONF)["drain_window"])
    stop = timespan_s(one(unit, "Service", "TimeoutStopSec"))
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    # Only the supervisor gets SIGTERM and passes it on: with the default
    # control-group mode each worker also gets one from systemd, and when the
    # two do not coincide the second, during the drain, means "stop now" (main.c).
    assert one(unit, "Service", "KillMode") == "mixed"
    assert stop > drain + HUB_DRAIN_SLACK_S, \
        f"TimeoutStopSec={stop} s does not outlast drain_window {drain} s + {HUB_DRAIN_SLACK_S} s"
    assert one(unit, "Service", "ExecStart").split()[:3] == [
        "/usr/local/bin/mizan-hub", "--config", "/etc/mizan-hub/mizan-hub.conf"]
    assert "-HUP" in one(unit, "Service", "ExecReload")


def test_unit_limits_and_hardening():
    unit = parse_unit(UNIT.read_text())
    assert int(one(unit, "Service", "LimitNOFILE")) >= 65536
    want = {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
            "PrivateTmp": "yes", "CapabilityBoundingSet": "", "ProtectHome": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX"}
    for key, value in want.items():
        assert one(unit, "Service", key) == value, key
    filters = [v for k, v in unit["Service"] if k == "SystemCallFilter"]
    assert "@system-service" in filters


def test_example_config_runs_reloads_and_drains_within_its_bound(make_hub, redis_server):
    # Everything in the file is a setting this hub knows (it refuses unknown
    # names); listen/redis come from flags, which win over the file.
    hub = make_hub(redis_server, config=str(CONF), allow_anonymous=True, drain_window=2,
                   admin_listen=f"127.0.0.1:{free_port()}")
    assert hub.readyz()[0] == 200

    async def body():
        clients = [await connect(hub) for _ in range(3)]
        hub.signal(signal.SIGHUP)  # what ExecReload sends
        await clients[0].ping_barrier()
        assert hub.running() and hub.readyz()[0] == 200
        t0 = time.monotonic()
        hub.signal(signal.SIGTERM)  # what systemctl stop sends
        codes = [(await c.wait_closed(2 + HUB_DRAIN_SLACK_S + 2))[0] for c in clients]
        assert codes == [1012] * 3, codes
        rc = hub.wait(2 + HUB_DRAIN_SLACK_S + 2)
        took = time.monotonic() - t0
        assert rc == 0 and took <= 2 + HUB_DRAIN_SLACK_S, (rc, took)

    run(body(), 30)


# ---------------------------------------------------------------- the sandbox


def syscall_groups() -> dict[str, set[str]]:
    """systemd's syscall groups (`systemd-analyze syscall-filter`), @nested ones as named."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        s = line.strip()
        if line.startswith("@"):
            cur = groups.setdefault(s, set())
        elif not s:
            cur = None
        elif cur is not None and not s.startswith("#"):
            cur.add(s)
    return groups


def expand(name: str, groups: dict[str, set[str]]) -> set[str]:
    if not name.startswith("@"):
        return {name}
    return set().union(*(expand(m, groups) for m in groups[name]))


def allowed_syscalls(unit) -> set[str]:
    groups = syscall_groups()
    allowed: set[str] = set()
    for value in [v for k, v in unit["Service"] if k == "SystemCallFilter"]:
        deny = value.startswith("~")
        names = set().union(*(expand(n, groups) for n in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_what_the_hub_calls_fits_the_units_sandbox(tmp_path, redis_server):
    """No systemd runs here to enforce the unit's SystemCallFilter and
    RestrictAddressFamilies, so the hub runs under strace (two workers: start,
    connections, SIGHUP, SIGTERM drain) and every system call and socket
    family it used must be one the unit allows."""
    unit = parse_unit(UNIT.read_text())
    trace = tmp_path / "strace.out"
    hub = Hub(tmp_path / "hub", redis_server.url, config=str(CONF), allow_anonymous=True,
              drain_window=1, workers=2, admin_listen=f"127.0.0.1:{free_port()}")
    hub.argv = lambda base=hub.argv: ["strace", "-f", "-qq", "-o", str(trace), *base()]
    try:
        hub.start()
        pid = int(Path(f"/proc/{hub.pid}/task/{hub.pid}/children").read_text().split()[0])

        async def body():
            clients = [await connect(hub) for _ in range(4)]
            os.kill(pid, signal.SIGHUP)
            await clients[0].ping_barrier()
            os.kill(pid, signal.SIGTERM)
            for c in clients:
                await c.wait_closed(10)
        run(body(), 30)
        assert hub.wait(15) == 0
    finally:
        hub.stop()
    calls, families = set(), set()
    for line in trace.read_text().splitlines():
        m = re.match(r"\d+\s+([a-z0-9_]+)\((.*)", line)
        if m:
            calls.add(m.group(1))
            if m.group(1) in ("socket", "socketpair"):
                families.add(m.group(2).split(",", 1)[0])
    assert {"accept4", "epoll_wait", "clone", "socket"} & calls, sorted(calls)
    refused = calls - allowed_syscalls(unit)
    assert not refused, f"the unit's SystemCallFilter would refuse {sorted(refused)}"
    restricted = set(one(unit, "Service", "RestrictAddressFamilies").split())
    assert families <= restricted, f"socket families {families - restricted} not allowed"


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_ci_test_passes_shellcheck():
    r = subprocess.run(["shellcheck", str(DEPLOY / "ci-test")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


# ---------------------------------------------------------------- under a real systemd (opt-in)

SYSTEMD_IMAGE = "localhost/mizan-hub-systemd:deploy-test"
# A Debian 12 machine with systemd as PID 1, Redis, the hub's runtime
# libraries and exactly the committed unit and config; the one addition is
# a secrets.env that allows anonymous connections (the config names no keys).
SYSTEMD_CONTAINERFILE = """\
FROM {base}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      systemd systemd-sysv redis-server curl libwebsockets17 libwebsockets-evlib-uv libuv1 \\
      libhiredis0.14 libjansson4 libjwt0 libssl3 zlib1g && rm -rf /var/lib/apt/lists/*
COPY mizan-hub /usr/local/bin/mizan-hub
COPY mizan-hub.conf /etc/mizan-hub/mizan-hub.conf
COPY mizan-hub.service /etc/systemd/system/mizan-hub.service
COPY secrets.env /etc/mizan-hub/secrets.env
RUN systemctl enable redis-server mizan-hub
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
"""
# Four raw WebSocket upgrades from bash, each printing what the hub sends.
OPEN_SOCKETS = r"""for i in 1 2 3 4; do ( exec 3<>/dev/tcp/127.0.0.1/8765
printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' >&3
od -An -tx1 <&3 | tr -d '\n' >/tmp/ws$i.hex ) & done; wait"""


@pytest.mark.skipif(podman_skip_reason() is not None, reason=podman_skip_reason() or "")
def test_unit_runs_under_systemd(tmp_path):
    """The committed unit, started, reloaded and stopped by systemd 252 as
    PID 1 of a (privileged, network-less) container: the sandbox is applied
    (no capabilities, no new privileges, seccomp, a dynamic user), reload
    sends SIGHUP to every worker, stop drains every socket with 1012 and
    ends in success within TimeoutStopSec."""
    ensure_base()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(HUB_BIN, ctx / "mizan-hub")
    shutil.copy(UNIT, ctx / "mizan-hub.service")
    shutil.copy(CONF, ctx / "mizan-hub.conf")
    (ctx / "secrets.env").write_text("MIZAN_HUB_ALLOW_ANONYMOUS=true\n")
    (ctx / "Containerfile").write_text(SYSTEMD_CONTAINERFILE.format(base=BASE_IMAGE))
    sh("podman", "build", "--isolation", "chroot", "--network", "host", "-t", SYSTEMD_IMAGE,
       str(ctx), timeout=900)
    name = f"mizan-hub-systemd-{uuid.uuid4().hex[:8]}"
    podman = ["podman", "--runtime", "runc"]

    def ex(script: str, check=True) -> str:
        return sh(*podman, "exec", name, "bash", "-c", script, check=check).stdout

    try:
        sh(*podman, "run", "-d", "--name", name, "--privileged", "--network", "none",
           "--systemd", "always", "--ulimit", "nofile=16384:16384",
           "--ulimit", "nproc=4096:4096", SYSTEMD_IMAGE)
        deadline = time.monotonic() + 30
        while ex("curl -s 127.0.0.1:8765/readyz", check=False) != "ready\n":
            assert time.monotonic() < deadline, ex(
                "systemctl status mizan-hub --no-pager; journalctl -u mizan-hub --no-pager",
                check=False)
            time.sleep(0.3)
        main = ex("systemctl show -p MainPID --value mizan-hub").strip()
        status = ex(f"cat /proc/{main}/status")
        for line in ("NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t0000000000000000",
                     "CapBnd:\t0000000000000000"):
            assert line in status, line
        uid = int(ex(f"stat -c %u /proc/{main}"))
        assert 61184 <= uid <= 65519, f"not a DynamicUser uid: {uid}"
        assert "mizan_hub_workers 2" in ex("curl -s 127.0.0.1:9765/metrics")

        ex("systemctl reload mizan-hub")
        assert ex("systemctl show -p MainPID --value mizan-hub").strip() == main
        assert ex("journalctl -u mizan-hub --no-pager").count("SIGHUP") == 2  # both workers

        ex(OPEN_SOCKETS + " >/dev/null 2>&1 &")
        deadline = time.monotonic() + 10
        while "mizan_hub_connections 4" not in ex("curl -s 127.0.0.1:9765/metrics"):
            assert time.monotonic() < deadline, "the four WebSockets did not open"
            time.sleep(0.2)
        t0 = time.monotonic()
        ex("systemctl stop mizan-hub")
        took = time.monotonic() - t0
        drain = int(conf_settings(CONF)["drain_window"])
        show = ex("systemctl show -p Result -p ExecMainStatus mizan-hub")
        assert "Result=success" in show and "ExecMainStatus=0" in show, show
        assert took <= drain + HUB_DRAIN_SLACK_S < timespan_s(
            one(parse_unit(UNIT.read_text()), "Service", "TimeoutStopSec")), took
        closes = ex("cat /tmp/ws1.hex /tmp/ws2.hex /tmp/ws3.hex /tmp/ws4.hex; echo")
        assert closes.count(" 03 f4") >= 4, closes  # a close frame with code 1012 each
    finally:
        sh(*podman, "rm", "-f", name, check=False)
