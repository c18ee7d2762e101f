"""Process life: settings and --help, HTTP endpoints, SIGTERM drain, worker
processes (SPEC 9, 13; issue 4 items 1, 2, 9, 10)."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time

from hubtest import SLOW, connect, run, run_cli, sanitizer_report

# Every setting issue 4 and this suite rely on.
SETTINGS = ["config", "listen", "redis", "redis-prefix", "hub-id", "allow-anonymous", "workers",
            "tls-cert", "tls-key", "max-frame", "ping-interval", "pong-timeout",
            "queue-max-msgs", "queue-max-bytes", "max-subs", "rpc-timeout-ms", "spread-max-ms",
            "drain-window", "canary-interval-ms", "canary-window", "redis-backoff-max-ms",
            "inbound-maxlen", "log-level", "log-format"]


def _no_sanitizer_report(p) -> None:
    report = sanitizer_report(p.stderr)
    assert report is None, f"sanitizer report:\n{report}"


def test_help_lists_every_setting_and_bad_values_exit_2():
    p = run_cli("--help")
    _no_sanitizer_report(p)
    assert p.returncode == 0, (p.returncode, p.stderr)
    text = p.stdout + p.stderr
    for name in SETTINGS:
        # An entry: "  --name  help" and its following lines, up to the next entry.
        m = re.search(rf"^ +--{name} .*?(?=^ +--|\Z)", text, re.M | re.S)
        assert m, f"--help does not list --{name}:\n{text}"
        assert "default" in m.group(0), f"--help gives no default for --{name}: {m.group(0)!r}"
        env = "MIZAN_HUB_" + name.upper().replace("-", "_")
        assert env in m.group(0), f"--help does not name {env} for --{name}: {m.group(0)!r}"
    assert "'127.0.0.1:8765'" in text and "'redis://127.0.0.1:6379/0'" in text, text

    bad = [
        (["--max-frame", "1"], "max-frame"),
        (["--max-frame", "abc"], "max-frame"),
        (["--workers", "0"], "workers"),
        (["--queue-max-msgs", "-5"], "queue-max-msgs"),
        (["--log-level", "loud"], "log-level"),
        (["--listen", "nohostnoport"], "listen"),
        (["--redis", "http://127.0.0.1:1/"], "redis"),
        (["--no-such-setting", "1"], "no-such-setting"),
    ]
    problems = []
    for args, name in bad:
        p = run_cli("--allow-anonymous", "--listen", "127.0.0.1:1", *args)
        _no_sanitizer_report(p)
        words = (name, name.replace("-", "_"))
        if p.returncode != 2 or not any(w in p.stderr for w in words):
            problems.append(f"{args}: exit {p.returncode}, stderr {p.stderr.strip()!r} "
                            f"(expected exit 2 naming {name})")
    assert not problems, "\n".join(problems)


def test_a_port_that_cannot_be_bound_exits_1_with_the_reason():
    """Start-up failures after the loop exists (here: the port is taken by a
    socket without SO_REUSEPORT) end with exit 1 and the reason, not with
    libuv's assertion (lws's handles were closed twice)."""
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = run_cli("--allow-anonymous", "--listen", f"127.0.0.1:{port}",
                    "--redis", "redis://127.0.0.1:1/0")
    _no_sanitizer_report(p)
    assert p.returncode == 1 and "cannot listen on" in p.stderr, (p.returncode, p.stderr[-800:])


def test_http_endpoints(hub):
    status, headers, body = hub.http("/healthz")
    assert (status, body.strip()) == (200, "ok"), (status, body)
    assert headers.get("cache-control") == "no-store", headers

    status, headers, body = hub.http("/readyz")
    assert status == 200, (status, body)
    assert headers.get("cache-control") == "no-store", headers

    async def one_client():
        c = await connect(hub)
        await c.subscribe(context="x")
        await c.send("not json")
        await c.recv()
        return c

    async def main():
        c = await one_client()
        status, headers, body = hub.http("/metrics")
        assert status == 200 and headers.get("cache-control") == "no-store", (status, headers)
        assert headers.get("content-type", "").startswith("text/plain"), headers
        names = set()
        types = {}
        for line in body.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
            assert m, f"not a Prometheus sample line: {line!r}"
            float(m.group(3))
            names.add(m.group(1))
        assert all(n.startswith("mizan_hub_") for n in names), sorted(names)
        for counter in ["connections_total", "frames_in_total", "frames_out_total",
                        "bytes_in_total", "bytes_out_total", "slow_consumer_closes_total",
                        "redis_reconnects_total"]:
            assert types.get("mizan_hub_" + counter) == "counter", (counter, types)
        for gauge in ["connections", "subscriptions"]:
            assert types.get("mizan_hub_" + gauge) == "gauge", (gauge, types)
        assert types.get("mizan_hub_publish_to_write_ms") == "histogram", types
        m = hub.metrics()
        assert m["mizan_hub_connections"] == 1 and m["mizan_hub_subscriptions"] == 1, m
        assert m["mizan_hub_connections_total"] >= 1 and m["mizan_hub_frames_in_total"] >= 2, m
        assert m["mizan_hub_frames_out_total"] >= 3, m  # welcome, ack, error
        await c.close()

    run(main())

    for path in ["/", "/nope", "/healthz/x", "/metricsx"]:
        status, headers, body = hub.http(path)
        assert status == 404, (path, status, body)
        assert headers.get("cache-control") == "no-store", (path, headers)


def test_sigterm_drains_with_1012_and_exits_0(make_hub, redis_server):
    hub = make_hub(redis_server, drain_window=1)
    n = 50

    async def main():
        clients = [await connect(hub) for _ in range(n)]
        for c in clients:
            await c.subscribe(context="x")
        answers = []
        stop = threading.Event()

        def watch_readyz():
            while not stop.is_set():
                try:
                    answers.append(hub.readyz())
                except OSError:
                    answers.append(None)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch_readyz, daemon=True)
        t0 = time.monotonic()
        hub.signal(signal.SIGTERM)
        watcher.start()

        async def closed(c):
            code, reason = await c.wait_closed(10 * SLOW)
            return code, time.monotonic() - t0

        results = await asyncio.gather(*(closed(c) for c in clients))
        rc = await asyncio.to_thread(hub.wait, 10 * SLOW)
        stop.set()
        watcher.join(5)
        codes = [code for code, _ in results]
        times = sorted(t for _, t in results)
        served = [a for a in answers if a is not None]
        # The signal is asynchronous: an answer computed before the hub saw
        # it is "ready"; from the first "draining" on, every one must say so.
        while served and served[0][0] == 200:
            served.pop(0)
        print(f"closes from {times[0]:.2f} s to {times[-1]:.2f} s; codes {set(codes)}; "
              f"exit {rc}; readyz during drain: {served[:3]}")
        problems = []
        if codes != [1012] * n:
            problems.append(f"close codes {codes} (None: no close frame), expected 1012 each")
        if times[-1] > 1.0 + 1.5 * SLOW:
            problems.append(f"last close after {times[-1]:.2f} s (window 1 s)")
        if times[-1] - times[0] < 0.3:
            problems.append(f"all {n} closes within {times[-1] - times[0]:.3f} s: "
                            "not spread over the window")
        if rc != 0:
            problems.append(f"exit code {rc} after SIGTERM")
        if not all(s == 503 and "draining" in b for s, b in served):
            problems.append(f"/readyz during the drain: {served}")
        assert not problems, "\n".join(problems)

    run(main())


def test_workers_share_the_port_and_drain(make_hub, redis_server):
    hub = make_hub(redis_server, workers=2, hub_id="wk", drain_window=1)

    async def main():
        # Every worker is ready when /readyz answers 200 several times in a row.
        for _ in range(10):
            await asyncio.to_thread(hub.wait_ready, 10)
        clients = [await connect(hub) for _ in range(20)]
        ids = {c.hub_id for c in clients}
        problems = []
        if len(ids) != 2:
            problems.append(f"hub ids in 20 welcome frames: {ids}, expected two workers'")
        for c in clients:
            if not c.conn.startswith(c.hub_id + "."):
                problems.append(f"conn id not under its hub id: {c.welcome}")
        hub.signal(signal.SIGTERM)
        # The drain window is 1 s: 5 s is ample, sanitizer or not.
        results = await asyncio.gather(*(c.wait_closed(5) for c in clients),
                                       return_exceptions=True)
        codes = [x[0] if isinstance(x, tuple) else "not closed in 5 s" for x in results]
        rc = await asyncio.to_thread(hub.wait, 3 * SLOW)
        if codes != [1012] * 20:
            problems.append(f"after SIGTERM to the supervisor, close codes {codes}, "
                            "expected 1012 each")
        if rc != 0:
            problems.append(f"supervisor exit code {rc} after SIGTERM"
                            + (f" (still running {5 + 3 * SLOW:.0f} s after SIGTERM)"
                               if rc is None else ""))
        crashes = [line for line in hub.stderr_text().splitlines() if "died" in line]
        if crashes:
            problems.append(f"workers died: {crashes[:3]}")
        assert not problems, "\n".join(problems)

    run(main())


def test_a_repeated_sigterm_does_not_cut_the_drain_short(make_hub, redis_server):
    """systemd's default KillMode signals every process of the group, and the
    supervisor forwards its own SIGTERM too: a worker gets two at once. The
    second one within a second is the same stop; a later one stops now."""
    hub = make_hub(redis_server, allow_anonymous=True, drain_window=4)

    async def main():
        c = await connect(hub)
        hub.signal(signal.SIGTERM)
        await asyncio.sleep(0.1)
        hub.signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert hub.running(), "the duplicate SIGTERM ended the drain"
        hub.signal(signal.SIGTERM)  # a real second one: stop now
        t0 = time.monotonic()
        assert await asyncio.to_thread(hub.wait, 5 * SLOW) == 0
        assert time.monotonic() - t0 < 2 * SLOW, "the second SIGTERM did not stop it at once"
        await c.close()
    run(main())
