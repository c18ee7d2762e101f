"""The fault suite's short version (run.py with its defaults: 200 clients,
a third of them on Server-Sent Events, every fault once, ~100 s of load):
real processes on loopback, and at the end zero stale contexts and zero
silent losses for every client, whatever its transport."""

from __future__ import annotations

import sys

from checker import summary
from run import FAULTS, options, run


def test_no_stale_context_and_no_silent_loss_under_faults(capsys):
    result = run(options([]))
    line = summary(result) + f" seconds={result['seconds']}"
    with capsys.disabled():  # the counts as TAP comments, in the suite's output
        print(f"# fault suite: {line}")
        for f in result["faults"]:
            print(f"# fault: {f['what']} ({f['seconds']} s)")
        sys.stdout.flush()
    assert [f["fault"] for f in result["faults"]] == list(FAULTS), result["faults"]
    assert result["ok"], "\n".join([line, *result["problems"][:40],
                                    f"logs kept in {result['dir']}"])
    c = result["counts"]
    # the faults really happened to the clients: they reconnected and were healed
    assert c["reconnects"] > 0 and c["heals"] > 0 and c["events"] > 500, line
    # ... over every transport: WebSockets, client-js over SSE (its frames
    # POSTed) and a bare EventSource (resumed by Last-Event-ID). A stream ends
    # when its hub loses Redis (SPEC 6.1): SSE clients heal by resuming, a
    # WebSocket stays and is healed by its hub (`gap`)
    for tr, tc in result["transports"].items():
        assert tc["clients"] >= 20 and tc["reconnects"] > 0 and tc["heals_resume"] > 0 and \
            tc["deliveries"] > 1000 and tc["pongs"] > 0, (tr, line)
    assert result["transports"]["ws"]["heals_gap"] > 0, line
