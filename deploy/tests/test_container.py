"""deploy/container/Containerfile.

Always: a lint of the file (hadolint is not packaged for Debian 12; this is
a small check of the instructions the image must have, the paths it copies,
and that its runtime packages provide every library the hub binary links).

With MIZAN_DEPLOY_CONTAINER=1 (deploy/ci-test then installs podman, buildah,
runc and mmdebstrap): the image is built and run for real. No registry is
reachable, so the Debian 12 base is made with `mmdebstrap bookworm` and
`podman import` (cached in /var/tmp/mizan-deploy); the build runs with
buildah's chroot isolation and the container with runc (crun refuses this
machine's hybrid cgroup layout). Measured here: 100 s from nothing
(mmdebstrap + apt + compile), 8 s with podman's layers cached -- beyond the
suite's one-minute budget on a clean machine, hence opt-in.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
import uuid

import pytest

from conftest import BASE_IMAGE, DEPLOY, HUB_BIN, ROOT, ensure_base, podman_skip_reason, sh
from hubtest import connect, free_port, run

CONTAINERFILE = DEPLOY / "container" / "Containerfile"
IMAGE = "localhost/mizan-hub:deploy-test"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def stages(ins) -> list[list[tuple[str, str]]]:
    out = []
    for i in ins:
        if i[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(i)
    return out


def apt_packages(stage) -> set[str]:
    pkgs = set()
    for word, rest in stage:
        if word == "RUN" and "apt-get install" in rest:
            seg = rest.split("apt-get install", 1)[1].split("&&", 1)[0]
            pkgs |= {w for w in seg.split() if not w.startswith("-")}
    return pkgs


def needed_packages() -> set[str]:
    """Debian packages of the libraries the hub binary names (DT_NEEDED)."""
    r = subprocess.run(["readelf", "-d", HUB_BIN], capture_output=True, text=True, check=True)
    libs = [line.split("[", 1)[1].split("]", 1)[0] for line in r.stdout.splitlines()
            if "(NEEDED)" in line]
    paths = {}
    for line in subprocess.run(["ldd", HUB_BIN], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            paths[parts[0]] = parts[2]
    pkgs = set()
    for lib in libs:
        path = paths[lib]
        # usrmerge: dpkg knows the file under /lib or /usr/lib, whichever it shipped
        alt = path[4:] if path.startswith("/usr/") else "/usr" + path
        for candidate in (path, alt):
            r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
            if r.returncode == 0:
                break
        assert r.returncode == 0, f"no package has {lib} ({path}): {r.stderr}"
        pkgs.add(r.stdout.split(":", 1)[0])
    return pkgs


def build_packages() -> set[str]:
    """Debian packages the repository's CMake files say the C build needs."""
    pkgs = set()
    files = [ROOT / "CMakeLists.txt", *ROOT.glob("cmake/*.cmake"), *ROOT.glob("*/CMakeLists.txt")]
    for f in files:
        text = f.read_text()
        pkgs |= set(re.findall(r"^\s*mh_require_pkg\(\s*\S+\s+\S+\s+(\S+?)\s*\)", text, re.M))
        if re.search(r"find_package\(\s*Python3\b", text):
            pkgs.add("python3")
    assert "libjansson-dev" in pkgs, pkgs  # the parse found the list
    return pkgs


def test_containerfile_lint():
    ins = instructions(CONTAINERFILE.read_text())
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for w, rest in ins if w == "ARG" and "=" in rest}
    assert "bookworm" in args.get("BASE", ""), "the base must be Debian 12 (bookworm)"
    st = stages(ins)
    assert len(st) >= 2, "multi-stage: a build stage and a runtime stage"
    build, final = st[0], st[-1]
    assert build[0][1].endswith(" AS build") and final[0][1] == "${BASE}", (build[0], final[0])
    fin = {}
    for word, rest in final:
        fin.setdefault(word, []).append(rest)
    users = fin.get("USER", [])
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert any(r.startswith("--from=build ") for r in fin.get("COPY", []))
    (hc,) = fin["HEALTHCHECK"]
    assert " CMD " in f" {hc} " and "/readyz" in hc, hc
    env = " ".join(fin.get("ENV", []))
    assert "MIZAN_HUB_CONFIG=" in env and "MIZAN_HUB_LISTEN=0.0.0.0:" in env
    port = env.split("MIZAN_HUB_LISTEN=0.0.0.0:", 1)[1].split()[0]
    assert port in fin["EXPOSE"][0].split(), fin["EXPOSE"]
    assert fin["STOPSIGNAL"] == ["SIGTERM"]
    assert json.loads(fin["ENTRYPOINT"][-1]) == ["/usr/local/bin/mizan-hub"]
    # Every COPY from the context names something in the repository that
    # the ignore file lets through (it excludes everything, then re-includes).
    ignore = CONTAINERFILE.with_name(CONTAINERFILE.name + ".dockerignore")
    rules = [r for r in ignore.read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", rules
    included = {r[1:].rstrip("/") for r in rules[1:] if r.startswith("!")}
    for _, rest in [i for s in st for i in s if i[0] == "COPY"]:
        if rest.startswith("--from="):
            continue
        for src in rest.split()[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            assert src.rstrip("/") in included, f"COPY {src}: excluded by {ignore.name}"
    # The build stage installs every package the CMake files require (the
    # Debian names mh_require_pkg gives, python3 for find_package(Python3)).
    missing = build_packages() - apt_packages(build)
    assert not missing, f"build stage lacks {sorted(missing)}"
    # The runtime stage installs the package of every library the hub links.
    missing = needed_packages() - apt_packages(final) - {"libc6"}
    assert not missing, f"runtime stage lacks {sorted(missing)}"


def test_lint_sees_mistakes(tmp_path, monkeypatch):
    text = CONTAINERFILE.read_text()
    (tmp_path / "Containerfile.dockerignore").write_text(
        CONTAINERFILE.with_name("Containerfile.dockerignore").read_text())
    for bad in (text.replace("USER 10001:10001", "USER root"),
                text.replace("/readyz", "/healthz"),
                text.replace(" libjansson4", ""),
                text.replace("      python3 \\\n", ""),
                text.replace("COPY server/ server/", "COPY server/ server/\nCOPY bench/ bench/")):
        f = tmp_path / "Containerfile"
        f.write_text(bad)
        monkeypatch.setattr(sys.modules[__name__], "CONTAINERFILE", f)
        with pytest.raises(AssertionError):
            test_containerfile_lint()


# ---------------------------------------------------------------- build and run


@pytest.mark.skipif(podman_skip_reason() is not None, reason=podman_skip_reason() or "")
def test_image_builds_runs_as_non_root_and_checks_readyz(redis_server):
    ensure_base()
    sh("podman", "build", "--isolation", "chroot", "--format", "docker", "--network", "host",
       "--build-arg", f"BASE={BASE_IMAGE}", "-f", str(CONTAINERFILE), "-t", IMAGE, str(ROOT),
       timeout=900)
    info = json.loads(sh("podman", "image", "inspect", IMAGE).stdout)[0]
    assert info["Config"]["User"] == "10001:10001"
    assert {"8765/tcp", "9765/tcp"} <= set(info["Config"]["ExposedPorts"])
    assert "/readyz" in " ".join(info["Healthcheck"]["Test"]), info.get("Healthcheck")

    port, name = free_port(), f"mizan-hub-test-{uuid.uuid4().hex[:8]}"
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    podman = ["podman", "--runtime", "runc"]
    try:
        sh(*podman, "run", "-d", "--name", name, "--network", "host", "--read-only",
           "--health-interval", "disable", "--ulimit", f"nofile={nofile}:{nofile}",
           "--ulimit", "nproc=4096:4096",
           "-e", f"MIZAN_HUB_LISTEN=127.0.0.1:{port}", "-e", f"MIZAN_HUB_REDIS={redis_server.url}",
           "-e", f"MIZAN_HUB_ADMIN_LISTEN=127.0.0.1:{free_port()}",
           "-e", "MIZAN_HUB_ALLOW_ANONYMOUS=true", "-e", "MIZAN_HUB_DRAIN_WINDOW=1", IMAGE)
        deadline = time.monotonic() + 20
        while sh(*podman, "healthcheck", "run", name, check=False).returncode != 0:
            assert time.monotonic() < deadline, sh(*podman, "logs", name, check=False).stderr
            time.sleep(0.3)
        users = sh(*podman, "top", name, "user").stdout.split()[1:]
        assert users and set(users) == {"mizan"}, users

        async def welcome():
            c = await connect(f"ws://127.0.0.1:{port}/")
            await c.close()
            return c.welcome
        assert "welcome" in run(welcome(), 15)

        redis_server.kill()  # the HEALTHCHECK is readiness, not liveness
        deadline = time.monotonic() + 15
        while sh(*podman, "healthcheck", "run", name, check=False).returncode == 0:
            assert time.monotonic() < deadline, "healthy without Redis"
            time.sleep(0.3)
        sh(*podman, "stop", "-t", "15", name)
        state = json.loads(sh(*podman, "inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, state
    finally:
        sh(*podman, "rm", "-f", name, check=False)
