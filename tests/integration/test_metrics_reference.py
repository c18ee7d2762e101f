"""server/README.md's metrics reference names every series the hub exports
(a single hub and one with --workers 2)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "server" / "README.md"


def test_every_exported_series_is_documented(make_hub, redis_server):
    hub = make_hub(redis_server, allow_anonymous=True)
    _, _, body = hub.http("/metrics")
    names = set(re.findall(r"^# TYPE (\S+) ", body, re.M))
    assert len(names) > 30
    documented = set(re.findall(r"^\| `(mizan_hub_[a-z0-9_]+)` \|", README.read_text(), re.M))
    missing = sorted(names - documented)
    assert not missing, f"series exported but not in server/README.md: {missing}"
    stale = sorted(documented - names - {"mizan_hub_workers", "mizan_hub_worker_connections",
                                         "mizan_hub_worker_ready"})
    assert not stale, f"series documented but not exported: {stale}"
