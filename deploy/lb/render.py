#!/usr/bin/env python3
"""Renders deploy/lb/haproxy.cfg and deploy/lb/nginx.conf for other
addresses, and runs the result: the committed files stay what a production
balancer uses, and the tests (deploy/tests, the fault suite) run exactly
those files with only the addresses and local paths changed.

    deploy/lb/render.py haproxy --listen 0.0.0.0:80 --hub 10.0.0.11:8765 \
        --hub 10.0.0.12:8765 --hub 10.0.0.13:8765 > /etc/haproxy/haproxy.cfg

What a rendering changes, and nothing else:
  * the listening address (`bind` / `listen`);
  * the hub list (one `server` line per --hub, named hub1.., with the
    options of the committed file);
  * --no-proxy-protocol: drops `send-proxy-v2` (for hubs that do not speak
    it; the client address is then lost);
  * --source ADDR: the balancer connects to the hubs from ADDR (HAProxy
    `source`, nginx `proxy_bind`), so a hub can trust exactly that address;
  * --run-dir DIR: an unprivileged, foreground-friendly copy: pid, sockets,
    logs and temp files in DIR, no chroot/user/daemon, small limits.

Every rewrite must find its line in the committed file; a file that drifted
from what this script knows raises RenderError instead of rendering
something else. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HAPROXY_CFG = HERE / "haproxy.cfg"
NGINX_CONF = HERE / "nginx.conf"


class RenderError(ValueError):
    pass


def _sub(text: str, pattern: str, repl, what: str, count: int | None = 1) -> str:
    """re.sub over lines (MULTILINE) that must match `count` times (None: >= 1)."""
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if (count is None and n == 0) or (count is not None and n != count):
        raise RenderError(f"{what}: expected {count or 'at least 1'} match(es) of "
                          f"{pattern!r}, found {n}")
    return new


def _check_addr(addr: str) -> str:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RenderError(f"not HOST:PORT: {addr!r}")
    return addr


def _replace_servers(text: str, pattern: str, make, what: str) -> str:
    """Replaces the run of server lines matched by `pattern` (group 1: the
    indent, group 2: the options after the address) with make(indent, opts)."""
    lines = text.split("\n")
    idx = [i for i, line in enumerate(lines) if re.match(pattern, line)]
    if not idx:
        raise RenderError(f"{what}: no server lines match {pattern!r}")
    if idx != list(range(idx[0], idx[-1] + 1)):
        raise RenderError(f"{what}: the server lines are not one block")
    m = re.match(pattern, lines[idx[0]])
    return "\n".join(lines[:idx[0]] + make(m.group(1), m.group(2)) + lines[idx[-1] + 1:])


def render_haproxy(text: str, *, listen: str, hubs: list[str], proxy_protocol: bool = True,
                   source: str | None = None, run_dir: Path | None = None) -> str:
    if not hubs:
        raise RenderError("at least one hub")
    text = _sub(text, r"^([ \t]*)bind\s+\S+[ \t]*$", lambda m: f"{m.group(1)}bind {_check_addr(listen)}",
                "frontend bind")
    text = _replace_servers(
        text, r"^([ \t]*)server\s+\S+\s+\S+(.*)$",
        lambda indent, opts: [f"{indent}server hub{i + 1} {_check_addr(h)}{opts}"
                              for i, h in enumerate(hubs)], "backend servers")
    if not proxy_protocol:
        text = _sub(text, r"^([ \t]*default-server\b.*?) send-proxy-v2\b", r"\1",
                    "send-proxy-v2 on default-server")
    if source:
        text = _sub(text, r"^([ \t]*)(default-server\b.*)$",
                    lambda m: f"{m.group(1)}source {source}\n{m.group(1)}{m.group(2)}",
                    "default-server (for source)")
    if run_dir is not None:
        run_dir = Path(run_dir)
        for kw in ("chroot", "user", "group", "daemon"):
            text = _sub(text, rf"^[ \t]*{kw}\b.*\n", "", f"global {kw}")
        text = _sub(text, r"^([ \t]*)stats socket\s+.*$",
                    lambda m: f"{m.group(1)}stats socket {run_dir}/haproxy.sock mode 600 level admin",
                    "stats socket")
        text = _sub(text, r"^([ \t]*)log /dev/log\b.*$",
                    lambda m: f"{m.group(1)}log stderr format short local0 notice", "global log")
        text = _sub(text, r"^([ \t]*)maxconn\s+\d+[ \t]*$", lambda m: f"{m.group(1)}maxconn 4000",
                    "maxconn", count=None)
    return text


def render_nginx(text: str, *, listen: str, hubs: list[str], source: str | None = None,
                 run_dir: Path | None = None) -> str:
    if not hubs:
        raise RenderError("at least one hub")
    text = _sub(text, r"^([ \t]*)listen\s+\S+;[ \t]*$",
                lambda m: f"{m.group(1)}listen {_check_addr(listen)};", "server listen")
    text = _replace_servers(
        text, r"^([ \t]*)server\s+(?!\{)\S+:\d+(.*;)[ \t]*$",
        lambda indent, opts: [f"{indent}server {_check_addr(h)}{opts}" for h in hubs],
        "upstream servers")
    if source:
        text = _sub(text, r"^([ \t]*)(proxy_pass\s.*)$",
                    lambda m: f"{m.group(1)}{m.group(2)}\n{m.group(1)}proxy_bind {source};",
                    "proxy_pass (for proxy_bind)")
    if run_dir is not None:
        d = Path(run_dir)
        text = _sub(text, r"^user\s.*\n", "", "user")
        text = _sub(text, r"^pid\s.*$", f"pid {d}/nginx.pid;", "pid")
        text = _sub(text, r"^error_log\s.*$", f"error_log {d}/error.log info;", "error_log")
        text = _sub(text, r"^([ \t]*)access_log\s.*$", lambda m: f"{m.group(1)}access_log {d}/access.log;",
                    "access_log")
        text = _sub(text, r"^worker_processes\s.*$", "worker_processes 1;", "worker_processes")
        text = _sub(text, r"^worker_rlimit_nofile\s.*$", "worker_rlimit_nofile 4096;",
                    "worker_rlimit_nofile")
        text = _sub(text, r"^([ \t]*)worker_connections\s.*$",
                    lambda m: f"{m.group(1)}worker_connections 1024;", "worker_connections")
        temps = "".join(f"\n    {k}_temp_path {d}/{k}_temp;"
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        text = _sub(text, r"^http \{$", lambda m: "http {" + temps, "http block")
    return text


# ---------------------------------------------------------------- running them


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"balancer exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"balancer not listening on {port} within {timeout} s")


class Balancer:
    """A balancer process on a rendered config in `run_dir`; stop() always."""

    kind = ""

    def __init__(self, run_dir: Path, listen_port: int, hubs: list[str], **render_kw):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = listen_port
        self.hubs = hubs
        self.render_kw = render_kw
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / f"{self.kind}.out"
        self.config = self.dir / f"{self.kind}.conf"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def render(self) -> str:
        raise NotImplementedError

    def check_cmd(self) -> list[str]:
        raise NotImplementedError

    def run_cmd(self) -> list[str]:
        raise NotImplementedError

    def write(self) -> Path:
        self.config.write_text(self.render())
        return self.config

    def check(self) -> subprocess.CompletedProcess:
        self.write()
        return subprocess.run(self.check_cmd(), capture_output=True, text=True, timeout=30)

    def start(self, timeout: float = 10) -> "Balancer":
        self.write()
        out = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(self.run_cmd(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        _wait_port(self.port, self.proc, timeout, self.log)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        else:
            try:  # nginx workers outlive a dead master only in a group we own
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class Haproxy(Balancer):
    kind = "haproxy"

    def render(self) -> str:
        return render_haproxy(HAPROXY_CFG.read_text(), listen=f"127.0.0.1:{self.port}",
                              hubs=self.hubs, run_dir=self.dir, **self.render_kw)

    def check_cmd(self) -> list[str]:
        return ["haproxy", "-c", "-f", str(self.config)]

    def run_cmd(self) -> list[str]:
        return ["haproxy", "-db", "-f", str(self.config)]

    def runtime(self, command: str) -> str:
        """One command of HAProxy's runtime API on the stats socket (`show
        stat`, `disable server mizan_hubs/hub1`, `set server ... weight 0`)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(str(self.dir / "haproxy.sock"))
            s.sendall(command.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def server_states(self) -> dict[str, dict[str, str]]:
        """hub name -> its `show stat` row (status: UP, DOWN, UP 1/2, ...;
        check_status: L7OK, L7STS, L4CON, ...)."""
        lines = self.runtime("show stat").splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "mizan_hubs" and row.get("svname", "").startswith("hub"):
                out[row["svname"]] = row
        return out


class Nginx(Balancer):
    kind = "nginx"

    def render(self) -> str:
        return render_nginx(NGINX_CONF.read_text(), listen=f"127.0.0.1:{self.port}",
                            hubs=self.hubs, run_dir=self.dir, **self.render_kw)

    def check_cmd(self) -> list[str]:
        return ["nginx", "-t", "-p", str(self.dir), "-c", str(self.config)]

    def run_cmd(self) -> list[str]:
        return ["nginx", "-p", str(self.dir), "-c", str(self.config), "-g", "daemon off;"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["haproxy", "nginx"])
    p.add_argument("--listen", required=True, help="HOST:PORT the balancer listens on")
    p.add_argument("--hub", action="append", required=True, help="HOST:PORT of a hub (repeat)")
    p.add_argument("--no-proxy-protocol", action="store_true",
                   help="HAProxy: do not send the PROXY v2 header to the hubs")
    p.add_argument("--source", help="address the balancer connects to the hubs from")
    p.add_argument("--run-dir", type=Path, help="local, unprivileged copy with its files in DIR")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    a = p.parse_args(argv)
    try:
        if a.kind == "haproxy":
            out = render_haproxy(HAPROXY_CFG.read_text(), listen=a.listen, hubs=a.hub,
                                 proxy_protocol=not a.no_proxy_protocol, source=a.source,
                                 run_dir=a.run_dir)
        else:
            if a.no_proxy_protocol:
                p.error("--no-proxy-protocol is for haproxy (nginx sends X-Forwarded-For)")
            out = render_nginx(NGINX_CONF.read_text(), listen=a.listen, hubs=a.hub,
                               source=a.source, run_dir=a.run_dir)
    except RenderError as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    if a.output:
        a.output.write_text(out)
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
