"""Process-wide counters: what was published, what failed; and gauges.

Publishing never raises into a request (unless ``STRICT``), so a failure
must leave a trace somewhere other than the response: a log line and one of
these counters, which tests and a metrics view can read. Plain integers
behind a lock, like the hub's own counters.

Gauges are read when asked for (:func:`metrics`, :func:`prometheus`): the
outbox's lag -- rows pending, the age of the oldest, rows refused -- per
database, which is the same in every process because it lives in the
database (``manage.py mizan_hub_relay --metrics`` prints it).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Callable

_lock = threading.Lock()
_counters: Counter[str] = Counter()

#: The names in use (others may be added; reading an unknown name gives 0).
NAMES = (
    "invalidations_published",   # envelopes of kind invalidate sent
    "messages_published",        # envelopes of kind message sent
    "publish_failures",          # envelopes Redis did not take (outage or refusal)
    "outbox_written",            # events queued (invalidate()/publish() calls)
    "outbox_relayed",            # outbox rows deleted after Redis acknowledged them
    "outbox_refused",            # rows Redis refused for good, taken out of the queue
    "outbox_deferred",           # after-commit relays skipped: Redis failed moments ago
    "middleware_bad_declarations",  # responses whose invalidate did not parse
    "sessions_registered",
    "sessions_removed",
    "session_failures",
    "worker_handled",
    "worker_handler_errors",
    "worker_bad_entries",
    "worker_claimed",
    "worker_skipped_stale",
)


def incr(name: str, amount: int = 1) -> None:
    with _lock:
        _counters[name] += amount


def get(name: str) -> int:
    with _lock:
        return _counters[name]


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_counters)


def reset() -> None:
    """Zero every counter (for tests)."""
    with _lock:
        _counters.clear()


# --------------------------------------------------------------------------
# Gauges and the Prometheus text
# --------------------------------------------------------------------------

#: Callables returning {gauge name: {labels (tuple of (name, value)): value}}.
_gauge_sources: list[Callable[[], dict]] = []


def register_gauges(source: Callable[[], dict]) -> None:
    if source not in _gauge_sources:
        _gauge_sources.append(source)


def gauges() -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for source in _gauge_sources:
        for name, samples in source().items():
            out.setdefault(name, {}).update(samples)
    return out


def metrics() -> dict[str, float]:
    """Counters and gauges, flat: a gauge with labels is summed over them
    (``outbox_pending``: rows pending in every database); the oldest age
    is the largest."""
    out: dict[str, float] = dict(snapshot())
    for name, samples in gauges().items():
        values = list(samples.values()) or [0]
        out[name] = max(values) if name.endswith("_age_seconds") else sum(values)
    return out


def _labels(labels: tuple) -> str:
    if not labels:
        return ""
    text = ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"')
                                 .replace("\n", "\\n")) for k, v in labels)
    return "{" + text + "}"


def prometheus(prefix: str = "mizan_hub_django_", *, counters: bool = True) -> str:
    """The Prometheus text exposition of this process's counters (unless
    ``counters=False``) and of the gauges."""
    lines = []
    values = snapshot() if counters else {}
    for name in sorted(set(NAMES) | set(values) if counters else ()):
        lines.append(f"# TYPE {prefix}{name}_total counter")
        lines.append(f"{prefix}{name}_total {values.get(name, 0)}")
    for name, samples in sorted(gauges().items()):
        lines.append(f"# TYPE {prefix}{name} gauge")
        for labels, value in sorted(samples.items()):
            number = int(value) if float(value).is_integer() else round(value, 3)
            lines.append(f"{prefix}{name}{_labels(labels)} {number}")
    return "\n".join(lines) + "\n"
