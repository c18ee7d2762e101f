#!/usr/bin/env python3
"""How evenly SPEC 11.1's mapping spreads realistic shard keys over 2..8
Redis shards: prints a Markdown table of the per-shard counts and the
max/min ratio (1.00 is perfectly even).

    python3 bench/shard_spread.py [--keys 100000] [--seed 1]

Three populations, each of --keys keys (deterministic, from --seed):

- channel instances (their canonical keys, SPEC 3), a realistic mix: per-user
  notification channels by sequential integer id, chat rooms by slug,
  documents by UUID, per-(team, board) channels with two params;
- connection ids (inbound streams), as hubs name them: "<hub id>.<n>",
  20 hubs with random 12-hex ids, connection numbers from 1;
- context names are few (an application has tens, not thousands) and each
  context's versions are one hash on one shard, so the last table shows
  where 40 typical names land: the load per context is what it is.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "django"))
from mizan_hub.protocol import canonical_key, shard  # noqa: E402

SHARDS = range(2, 9)
CONTEXTS = [
    "user", "profile", "settings", "notifications", "todos", "todo", "projects", "project",
    "tasks", "task", "comments", "comment", "messages", "inbox", "threads", "thread", "orders",
    "order", "cart", "products", "product", "inventory", "invoices", "invoice", "customers",
    "customer", "team", "teams", "members", "boards", "board", "cards", "card", "activity",
    "feed", "search", "reports", "dashboard", "billing", "audit_log",
]


def channel_keys(n: int, rng: random.Random) -> list[str]:
    keys = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            keys.append(canonical_key("notifications", {"user_id": i // 4 + 1}))
        elif kind == 1:
            slug = "-".join(rng.choice(["general", "random", "dev", "ops", "sales", "eu", "us",
                                        "team", "alpha", "beta"]) for _ in range(2))
            keys.append(canonical_key("chat", {"room": f"{slug}-{i}"}))
        elif kind == 2:
            keys.append(canonical_key("doc", {"doc_id": str(uuid.UUID(int=rng.getrandbits(128)))}))
        else:
            keys.append(canonical_key("board", {"team": rng.randrange(1, 500),
                                                "board": rng.randrange(1, 2000)}))
    return keys


def conn_ids(n: int, rng: random.Random) -> list[str]:
    hubs = [f"{rng.getrandbits(48):012x}" for _ in range(20)]
    return [f"{hubs[i % 20]}.{i // 20 + 1}" for i in range(n)]


def table(title: str, keys: list[str]) -> str:
    lines = [f"**{title}** ({len(keys):,} keys)", "",
             "| shards | per-shard counts | max/min |", "|---|---|---|"]
    for n in SHARDS:
        counts = [0] * n
        for key in keys:
            counts[shard(key, n)] += 1
        ratio = max(counts) / min(counts) if min(counts) else float("inf")
        lines.append(f"| {n} | {' '.join(str(c) for c in counts)} | {ratio:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(table("Channel instances (canonical keys)", channel_keys(args.keys, rng)))
    print()
    print(table("Connection ids (inbound streams)", conn_ids(args.keys, rng)))
    print()
    print(table(f"Context names ({len(CONTEXTS)} typical names)", CONTEXTS))


if __name__ == "__main__":
    main()
