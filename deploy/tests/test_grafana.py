"""deploy/grafana/mizan-hub.json: every PromQL expression names only series
a real hub exports (scraped from a running hub's /metrics, conftest.py's
hub_series), groups only by labels those series carry (or that Prometheus
adds to every target), and the panels the README promises are there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import DEPLOY
from hubtest import connect, free_port, now_ms, poll, publish_invalidate, run

DASHBOARD = DEPLOY / "grafana" / "mizan-hub.json"
# Labels Prometheus itself attaches to every scraped series (job, instance)
# and the Kubernetes service discovery's usual target labels.
TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "container", "endpoint"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def exprs(dash: dict) -> list[str]:
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def series_in(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, labels in matchers, labels in by/without) of a PromQL expression."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)       # string literals
    s = re.sub(r"\[[^\]]*\]", "", s)                   # range selectors, [$__rate_interval]
    matcher_labels = set()
    for m in re.finditer(r"\{([^}]*)\}", s):
        matcher_labels |= set(re.findall(rf"({IDENT})\s*(?:=~|!~|!=|=)", m.group(1)))
    s = re.sub(r"\{[^}]*\}", "", s)
    grouping = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", s):
        grouping |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    s = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(rf"({IDENT})(\s*\()?", s):
        if m.group(2) or m.group(1).lower() in KEYWORDS:
            continue  # a function call or a keyword
        names.add(m.group(1))
    return names, matcher_labels, grouping


def template_series(dash: dict) -> list[tuple[str, str]]:
    out = []
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(rf"label_values\(({IDENT})(?:\{{[^}}]*\}})?,\s*({IDENT})\)", q)
        assert m, f"variable {v['name']}: not a label_values() query: {q!r}"
        out.append((m.group(1), m.group(2)))
    return out


def problems(dash: dict, families: dict, series: dict) -> list[str]:
    found = []
    for e in exprs(dash):
        names, matchers, grouping = series_in(e)
        if not names:
            found.append(f"no series in {e!r}")
        for n in names:
            if n not in series:
                found.append(f"{n}: not exported by the hub ({e!r})")
                continue
            allowed = series[n] | TARGET_LABELS | ({"le"} if n.endswith("_bucket") else set())
            for label in (matchers | grouping) - allowed:
                found.append(f"{n}: no label {label!r} ({e!r})")
    for metric, label in template_series(dash):
        if metric not in series:
            found.append(f"variable: {metric} not exported by the hub")
        elif label not in series[metric] | TARGET_LABELS:
            found.append(f"variable: {metric} has no label {label}")
    return found


@pytest.fixture(scope="module")
def dash():
    return json.loads(DASHBOARD.read_text())


def test_every_expression_names_series_the_hub_exports(dash, hub_series):
    families, series = hub_series
    assert problems(dash, families, series) == []


def test_the_check_sees_a_wrong_name(dash, hub_series):
    families, series = hub_series
    bad = json.loads(json.dumps(dash))
    bad["panels"][1]["targets"][0]["expr"] = 'sum(mizan_hub_conections{job=~"$job"})'
    assert any("mizan_hub_conections: not exported" in p for p in problems(bad, families, series))
    bad["panels"][1]["targets"][0]["expr"] = "sum by (route) (mizan_hub_rejections_total)"
    assert any("no label 'route'" in p for p in problems(bad, families, series))


def test_series_extraction():
    assert series_in('histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"x"}[5m])))') == \
        ({"a_bucket"}, {"job"}, {"le"})
    assert series_in("sum(rate(x_sum[1m])) / sum(rate(x_count[1m]))")[0] == {"x_sum", "x_count"}


def test_the_promised_panels_are_there(dash, hub_series):
    families, _ = hub_series
    text = "\n".join(exprs(dash))
    for needed in ("mizan_hub_connections", "mizan_hub_frames_out_total",
                   "mizan_hub_publish_to_write_ms_bucket", "mizan_hub_rejections_total",
                   "mizan_hub_slow_consumer_closes_total", "mizan_hub_redis_reconnects_total",
                   "mizan_hub_heals_total", "mizan_hub_ready"):
        assert needed in text, needed
    assert "histogram_quantile(0.99" in text
    assert families["mizan_hub_publish_to_write_ms"] == "histogram"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] and dash["schemaVersion"] >= 36
    for p in dash["panels"]:
        assert p["type"] == "row" or p["datasource"] == {"type": "prometheus",
                                                         "uid": "${datasource}"}, p["title"]


# ---------------------------------------------------------------- in a real Prometheus


def prom_query(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus is not installed "
                    "(apt-get install prometheus; deploy/ci-test does)")
def test_every_panel_query_answers_in_prometheus(dash, tmp_path, make_hub, redis_server):
    """Prometheus 2.42 (Debian 12) scrapes a real hub with two workers every
    second while a client gets an invalidation; then every panel's query,
    with the dashboard's variables filled in, must parse and return series
    (a filter such as `== 0` may rightly return none), and the variables'
    label_values() must find the job and the instance."""
    hub = make_hub(redis_server, workers=2)
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: mizan-hub\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{hub.port}']}}]\n")
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        async def traffic():
            c = await connect(hub)
            await c.subscribe(context="feed")
            publish_invalidate(redis_server.client(), ["feed"], {"feed": "f1:1"}, ts=now_ms())
            assert "invalidate" in await c.recv()
            # a refused upgrade, so the rejection counter has its labels
            with pytest.raises(Exception):
                await connect(hub, path="/", additional_headers={"Sec-WebSocket-Version": "12"})
            return c
        client = run(traffic(), 20)

        def scraped() -> bool:
            try:
                r = prom_query(port, "/api/v1/query",
                               query='count_over_time(up{job="mizan-hub"}[1m]) >= 4')
            except OSError:
                return False
            return bool(r["data"]["result"])
        run(poll(scraped, 20, interval=0.25, what="four scrapes of the hub"), 30)

        failures = []
        for e in exprs(dash):
            q = (e.replace("$job", "mizan-hub").replace("$instance", ".*")
                 .replace("$__rate_interval", "10s"))
            try:
                r = prom_query(port, "/api/v1/query", query=q)
            except urllib.error.HTTPError as err:
                failures.append(f"{e!r}: HTTP {err.code} {err.read()[:300]!r}")
                continue
            if r["status"] != "success":
                failures.append(f"{e!r}: {r}")
            elif not r["data"]["result"] and not re.search(r"[=!<>]=?\s*\d+\s*\)?\s*$", e.rstrip(")")):
                failures.append(f"{e!r}: no series")
        for metric, label in template_series(dash):
            values = prom_query(port, f"/api/v1/label/{label}/values", **{"match[]": metric})
            if not values["data"]:
                failures.append(f"label_values({metric}, {label}): nothing")
        assert failures == [], "\n".join(failures)
        run(client.close(), 5)
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
