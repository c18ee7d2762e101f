"""Envelopes on `mizan:events` that break SPEC 11 are dropped and counted,
unknown kinds ignored, and the hub keeps serving (SPEC 9, 11)."""

from __future__ import annotations

import json

from hubtest import ROOT, connect, publish_invalidate, run

VECTORS = json.loads((ROOT / "protocol" / "vectors" / "envelope_decode.json").read_text("utf-8"))


def test_bad_envelopes_are_dropped_and_counted(hub, r):
    bad = [c for c in VECTORS["cases"] if c.get("error", {}).get("code") in
           ("bad_envelope", "bad_json")]
    unknown = [c for c in VECTORS["cases"] if c.get("error", {}).get("code") == "unknown_kind"]
    assert len(bad) > 20 and unknown

    async def main():
        c = await connect(hub)
        for ctx in ("a", "b", "user", "notifications"):
            await c.subscribe(context=ctx)
        for ch in ("chat", "c"):
            await c.subscribe(channel=ch)
        await c.subscribe(context="sentinel")
        before = hub.metrics()
        for case in bad + unknown:
            r.publish("mizan:events", case["input"])
        publish_invalidate(r, ["sentinel"], {"sentinel": "s:1"})
        # Nothing of the bad ones was delivered: the sentinel comes first.
        assert await c.recv() == {"invalidate": ["sentinel"], "versions": {"sentinel": "s:1"},
                                  "spread_ms": 0}
        after = hub.metrics()
        got_bad = after["mizan_hub_envelopes_bad_total"] - before["mizan_hub_envelopes_bad_total"]
        got_unknown = after["mizan_hub_envelopes_unknown_total"] - \
            before["mizan_hub_envelopes_unknown_total"]
        assert (got_bad, got_unknown) == (len(bad), len(unknown)), \
            f"counted {got_bad} bad and {got_unknown} unknown envelopes, published " \
            f"{len(bad)} and {len(unknown)}"
        assert await c.ping_barrier() == []
        await c.close()

    run(main())
