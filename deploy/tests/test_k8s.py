"""deploy/k8s/*.yaml against the Kubernetes API schemas, with no cluster.

The schemas are the official Python client's models (`kubernetes` on PyPI,
generated from the API's OpenAPI document): every field of every object
must be one the API defines for that kind (walked recursively through
`openapi_types`/`attribute_map`, so a misspelt or misplaced key fails), of
the right JSON type, and `ApiClient().deserialize` must build the object
(it refuses a missing required field). The ServiceMonitor is a CRD the
client does not know: its fields are checked by hand. Then the manifests
are checked against each other: selectors match labels, port names match
probes and the Service, the grace period outlasts preStop + drain, the HPA
metric is one the hub exports.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess

import kubernetes.client as k8s
import pytest
import yaml
from kubernetes.client import ApiClient

from conftest import DEPLOY
from hubtest import free_port

K8S = DEPLOY / "k8s"
# server/src/main.c: the hub exits at most 3 s after drain_window.
HUB_DRAIN_SLACK_S = 3
PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
              "datetime": (str,), "date": (str,), "object": (object,)}


def load(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def all_docs() -> list[tuple[str, dict]]:
    files = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [(f, d) for f in files + ["redis-sentinel.yaml"] for d in load(f)]


def model_name(doc: dict) -> str:
    version = doc["apiVersion"].rsplit("/", 1)[-1]
    return version[0].upper() + version[1:] + doc["kind"]


def schema_errors(value, type_str: str, path: str) -> list[str]:
    """Every place where `value` does not fit the client model type `type_str`."""
    if value is None:
        return []
    m = re.fullmatch(r"list\[(.+)\]", type_str)
    if m:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [e for i, v in enumerate(value) for e in schema_errors(v, m.group(1), f"{path}[{i}]")]
    m = re.fullmatch(r"dict\(str, (.+)\)", type_str)
    if m:
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        return [e for k, v in value.items() for e in schema_errors(v, m.group(1), f"{path}.{k}")]
    if type_str in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_str]) and not (
            type_str in ("int", "float") and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {type_str}, got {value!r}"]
    cls = getattr(k8s, type_str, None)
    if cls is None:
        return [f"{path}: the client has no model {type_str}"]
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_str}), got {value!r}"]
    fields = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    errors = []
    for key, v in value.items():
        if key not in fields:
            errors.append(f"{path}.{key}: not a field of {type_str}")
        else:
            errors += schema_errors(v, cls.openapi_types[fields[key]], f"{path}.{key}")
    return errors


class _Response:
    def __init__(self, doc):
        self.data = json.dumps(doc)


def validate(doc: dict) -> list[str]:
    name = model_name(doc)
    if not hasattr(k8s, name):
        return [f"{doc['kind']}: no model {name} in the Kubernetes client"]
    errors = schema_errors(doc, name, doc["kind"])
    if not errors:
        try:  # required fields (the models refuse None where the API needs a value)
            ApiClient().deserialize(_Response(doc), name)
        except (ValueError, TypeError) as e:
            errors.append(f"{doc['kind']}: {e}")
    return errors


BUILTIN = [(f, d) for f, d in all_docs() if d["apiVersion"] != "monitoring.coreos.com/v1"]


@pytest.mark.parametrize("doc", [d for _, d in BUILTIN],
                         ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in BUILTIN])
def test_manifest_fits_the_api_schema(doc):
    assert validate(doc) == []


def test_schema_check_sees_mistakes():
    dep = load("deployment.yaml")[0]
    bad = json.loads(json.dumps(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert any("readinessprobe: not a field" in e for e in validate(bad))
    bad = json.loads(json.dumps(dep))
    bad["spec"]["replicas"] = "three"
    assert any("spec.replicas: expected int" in e for e in validate(bad))
    bad = json.loads(json.dumps(dep))
    del bad["spec"]["selector"]
    assert validate(bad), "a Deployment without a selector passed"


def test_kustomization_lists_every_file():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "redis-sentinel.yaml"}
    assert sorted(k["resources"]) == sorted(files)


def test_servicemonitor_by_hand():
    (sm,) = load("servicemonitor.yaml")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    assert set(sm) <= {"apiVersion", "kind", "metadata", "spec"}
    assert schema_errors(sm["metadata"], "V1ObjectMeta", "metadata") == []
    spec = sm["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel",
                         "targetLabels", "podTargetLabels", "sampleLimit"}, set(spec)
    assert schema_errors(spec["selector"], "V1LabelSelector", "spec.selector") == []
    assert spec["endpoints"], "spec.endpoints is required"
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout",
                           "honorLabels", "relabelings", "metricRelabelings"}, set(ep)
        assert isinstance(ep["port"], str)
        for key in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"(\d+(ms|s|m|h))+", ep.get(key, "1s")), ep.get(key)


# ---------------------------------------------------------------- cross-references


def by_kind(kind: str, name: str = "mizan-hub") -> dict:
    docs = [d for _, d in all_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(docs) == 1, (kind, name, len(docs))
    return docs[0]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def hub_conf() -> dict[str, str]:
    text = by_kind("ConfigMap", "mizan-hub-config")["data"]["mizan-hub.conf"]
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def test_selectors_match_the_pods():
    dep = by_kind("Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(dep["spec"]["selector"]["matchLabels"], pod_labels)
    svc = by_kind("Service")
    assert selects(svc["spec"]["selector"], pod_labels)
    assert selects(by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    sm = by_kind("ServiceMonitor")
    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert all(selects(c["labelSelector"]["matchLabels"], pod_labels) for c in spread)
    assert svc["spec"].get("sessionAffinity", "None") == "None"
    hpa = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": dep["metadata"]["name"]}


def test_ports_and_probes_line_up():
    dep = by_kind("Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ports, probe
    svc = by_kind("Service")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert all(p["targetPort"] in ports for p in svc_ports.values())
    assert {ep["port"] for ep in by_kind("ServiceMonitor")["spec"]["endpoints"]} <= set(svc_ports)
    # The hub listens where the container ports say: WebSockets on ws, the
    # probes and /metrics on the admin listener (which outlives the drain).
    env = {e["name"]: e.get("value") for e in c["env"]}
    listen = env.get("MIZAN_HUB_LISTEN") or hub_conf()["listen"]
    assert int(listen.rsplit(":", 1)[1]) == ports["ws"]
    admin = env.get("MIZAN_HUB_ADMIN_LISTEN") or hub_conf()["admin_listen"]
    assert int(admin.rsplit(":", 1)[1]) == ports["admin"]
    assert c["readinessProbe"]["httpGet"]["port"] == "admin"
    assert svc_ports["metrics"]["targetPort"] == "admin"
    # Prometheus scrapes the admin listener (/metrics is not on ws).
    for ep in by_kind("ServiceMonitor")["spec"]["endpoints"]:
        assert svc_ports[ep["port"]]["targetPort"] == "admin", ep


def test_grace_period_outlasts_prestop_and_drain():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep", cmd
    pre_stop = int(cmd[1])
    drain = int(hub_conf()["drain_window"])
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain + HUB_DRAIN_SLACK_S, \
        (spec["terminationGracePeriodSeconds"], pre_stop, drain)
    assert pre_stop >= 2 * c["readinessProbe"]["periodSeconds"]


def test_pods_run_as_the_image_user_and_mount_what_exists():
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    containerfile = (DEPLOY / "container" / "Containerfile").read_text()
    m = re.search(r"^USER (\d+):(\d+)$", containerfile, re.M)
    assert m and spec["securityContext"]["runAsUser"] == int(m.group(1))
    (c,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all(vm["name"] in volumes for vm in c["volumeMounts"])
    for v in volumes.values():
        if "configMap" in v:
            by_kind("ConfigMap", v["configMap"]["name"])
    for ref in c.get("envFrom", []):
        by_kind("Secret", ref["secretRef"]["name"])
    assert c["args"][:2] == ["--config", "/etc/mizan-hub/mizan-hub.conf"]
    assert any(vm["mountPath"] == "/etc/mizan-hub" for vm in c["volumeMounts"])


def test_hpa_scales_on_a_series_the_hub_exports(hub_series):
    families, _ = hub_series
    (metric,) = by_kind("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name == "mizan_hub_connections" and families.get(name) == "gauge", families.get(name)


def test_configmap_settings_run_the_hub(tmp_path, make_hub, redis_server):
    # Every line is a setting this hub knows (it refuses unknown names);
    # listen and redis come from flags, which win over the file.
    conf = tmp_path / "mizan-hub.conf"
    conf.write_text(by_kind("ConfigMap", "mizan-hub-config")["data"]["mizan-hub.conf"])
    admin = free_port()
    # (and no Sentinels: deployment.yaml's env var names them, not this file)
    hub = make_hub(redis_server, config=str(conf), allow_anonymous=True,
                   admin_listen=f"127.0.0.1:{admin}")
    assert hub.readyz()[0] == 200
    # /metrics only on the admin listener, which the Service's metrics port targets
    assert hub.http("/metrics")[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/metrics")
    assert conn.getresponse().status == 200
    conn.close()


def test_the_hubs_follow_the_example_sentinels():
    """deployment.yaml's MIZAN_HUB_REDIS_SENTINELS names every Sentinel pod of
    redis-sentinel.yaml (StatefulSet pods through its headless Service, the
    Sentinel port) and configmap.yaml's redis_master_name is the master the
    Sentinels monitor: hubs and Django (its settings at the top of that
    file) ask the same Sentinels for the same master."""
    (c,) = by_kind("Deployment", "mizan-hub")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    listed = re.split(r"[ ,]+", env["MIZAN_HUB_REDIS_SENTINELS"].strip())
    docs = load("redis-sentinel.yaml")
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet" and
              d["metadata"]["name"] == "redis-sentinel"]
    (port,) = [p["containerPort"] for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]
               if p["name"] == "sentinel"]
    name, svc = sts["metadata"]["name"], sts["spec"]["serviceName"]
    assert listed == [f"{name}-{i}.{svc}:{port}" for i in range(sts["spec"]["replicas"])]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    monitored = re.search(r"sentinel monitor (\S+) ", cm["data"]["sentinel-init.sh"]).group(1)
    assert hub_conf()["redis_master_name"] == monitored
    header = (DEPLOY / "k8s" / "redis-sentinel.yaml").read_text().split("apiVersion")[0]
    assert f'"REDIS_MASTER_NAME": "{monitored}"' in header
    for sentinel in listed:
        assert f'"{sentinel}"' in header


@pytest.mark.skipif(not shutil.which("yamllint"), reason="yamllint is not installed")
def test_yamllint():
    r = subprocess.run(["yamllint", "-c", str(K8S / ".yamllint"), "-f", "parsable", str(K8S)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sentinel_scripts_pass_shellcheck(tmp_path):
    (cm,) = [d for d in load("redis-sentinel.yaml") if d["kind"] == "ConfigMap"]
    for name, script in cm["data"].items():
        f = tmp_path / name
        f.write_text(script)
        r = subprocess.run(["sh", "-n", str(f)], capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)
        if shutil.which("shellcheck"):
            r = subprocess.run(["shellcheck", "-s", "sh", str(f)], capture_output=True, text=True)
            assert r.returncode == 0, (name, r.stdout)
    sts = {d["metadata"]["name"]: d for d in load("redis-sentinel.yaml") if d["kind"] == "StatefulSet"}
    svcs = {d["metadata"]["name"]: d for d in load("redis-sentinel.yaml") if d["kind"] == "Service"}
    for name, s in sts.items():
        labels = s["spec"]["template"]["metadata"]["labels"]
        assert selects(s["spec"]["selector"]["matchLabels"], labels)
        assert selects(svcs[s["spec"]["serviceName"]]["spec"]["selector"], labels)
