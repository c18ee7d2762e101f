"""Process-wide counters: what was published, what failed.

Publishing never raises into a request (unless ``STRICT``), so a failure
must leave a trace somewhere other than the response: a log line and one of
these counters, which tests and a metrics view can read. Plain integers
behind a lock, like the hub's own counters.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counters: Counter[str] = Counter()

#: The names in use (others may be added; reading an unknown name gives 0).
NAMES = (
    "invalidations_published",   # envelopes of kind invalidate sent
    "messages_published",        # envelopes of kind message sent
    "publish_failures",          # publishes lost to a Redis error
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
