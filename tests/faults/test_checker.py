"""The checker can fail: doctored logs with one stale context, one lost
message, one undelivered publish, one unfinished client each fail it, and
the same logs without the defect pass. (tests/faults/README.md also shows a
real run with a broken client -- `run.py --no-resume` -- that it fails.)"""

from __future__ import annotations

import copy

import pytest

from checker import check, summary

E = "ep1"


def pub_inv(t, entries, versions, i=None):
    return [{"k": "intent", "i": i or int(t * 10), "t": t - 0.01, "inv": entries},
            {"k": "pub", "t": t, "env": {"v": 1, "kind": "invalidate", "invalidate": entries,
                                         "versions": versions}}]


def pub_msg(t, channel, params, seq, mid, epoch="m1"):
    return [{"k": "intent", "i": mid, "t": t - 0.01,
             "msg": {"channel": channel, "params": params, "id": mid}},
            {"k": "pub", "t": t, "env": {"v": 1, "kind": "message", "channel": channel,
                                         "params": params, "type": "message",
                                         "data": {"id": mid}, "seq": seq, "epoch": epoch}}]


END = {"k": "end", "t": 100.0, "outbox_left": 0, "refused": 0}
DOC = '["doc",{"id":"3","org":"1"}]'
ROOM = '["room",{"room":"1"}]'


def good():
    publisher = [
        *pub_inv(1.0, [{"context": "doc", "params": {"org": "1", "id": "3"}}], {"doc": f"{E}:1"}),
        *pub_inv(2.0, [{"context": "doc", "params": {"org": "1", "id": "4"}}], {"doc": f"{E}:2"}),
        *pub_inv(3.0, [{"context": "doc", "params": {"org": "1"}}], {"doc": f"{E}:3"}),
        *pub_msg(1.5, "room", {"room": "1"}, 1, 101),
        *pub_msg(2.5, "room", {"room": "1"}, 2, 102),
        *pub_msg(3.5, "room", {"room": "1"}, 3, 103),
        END,
    ]
    client = [
        {"k": "sub", "c": 0, "t": 0.5, "s": DOC, "ctx": "doc", "p": {"org": "1", "id": "3"}},
        {"k": "csub", "c": 0, "t": 0.5, "s": ROOM, "ch": "room", "p": {"room": "1"}},
        {"k": "conn", "c": 0, "t": 0.6, "hub": "h1"},
        {"k": "ack", "c": 0, "t": 0.7, "s": DOC, "v": "0:0", "f": True},
        {"k": "cack", "c": 0, "t": 0.7, "s": ROOM, "e": "0", "q": 0, "f": True},
        {"k": "inv", "c": 0, "t": 1.1, "s": DOC, "v": f"{E}:1", "r": None},
        {"k": "msg", "c": 0, "t": 1.6, "s": ROOM, "e": "m1", "q": 1, "id": 101},
        {"k": "msg", "c": 0, "t": 2.6, "s": ROOM, "e": "m1", "q": 2, "id": 102},
        {"k": "inv", "c": 0, "t": 3.1, "s": DOC, "v": f"{E}:3", "r": None},  # doc{org:1}
        {"k": "msg", "c": 0, "t": 3.6, "s": ROOM, "e": "m1", "q": 3, "id": 103},
        {"k": "done", "c": 0, "t": 9.0},
    ]
    return publisher, client


def without(records, **match):
    out = [r for r in records if not all(r.get(k) == v for k, v in match.items())]
    assert len(out) == len(records) - 1, f"no single record matches {match}"
    return out


def test_a_clean_log_passes_and_is_counted():
    result = check(*good())
    assert result["ok"], result["problems"]
    c = result["counts"]
    assert (c["events"], c["deliveries"], c["stale"], c["lost"]) == (6, 5, 0, 0)


def test_a_missed_last_invalidation_is_a_stale_context():
    publisher, client = good()
    result = check(publisher, without(client, k="inv", v=f"{E}:3"))
    assert not result["ok"] and result["counts"]["stale"] == 1
    assert result["problems"][0].startswith(f"STALE ws client 0 {DOC}"), result["problems"]


def test_an_event_on_other_params_needs_no_invalidation():
    # doc{org:1,id:4} (counter 2) does not match doc{org:1,id:3}: nothing is
    # owed for it; the last matching change is doc{org:1} (3)
    publisher, client = good()
    publisher = [r for r in publisher if not (r["k"] == "pub" and
                                              r["env"].get("versions") == {"doc": f"{E}:3"})]
    publisher = [r for r in publisher if not (r["k"] == "intent" and r["t"] == 3.0 - 0.01)]
    client = without(client, k="inv", v=f"{E}:3")
    assert check(publisher, client)["ok"]


def test_a_resume_ack_is_not_a_refetch_but_a_versionless_heal_after_the_change_is():
    publisher, client = good()
    client = without(client, k="inv", v=f"{E}:3")
    resume_ack = {"k": "ack", "c": 0, "t": 5.0, "s": DOC, "v": f"{E}:3", "f": False}
    assert check(publisher, client + [resume_ack])["counts"]["stale"] == 1
    heal = {"k": "inv", "c": 0, "t": 5.0, "s": DOC, "v": None, "r": "gap"}
    assert check(publisher, client + [heal])["ok"]
    early_heal = dict(heal, t=2.9)  # before the change: does not cover it
    assert check(publisher, client + [early_heal])["counts"]["stale"] == 1


def test_a_missing_message_is_a_loss_unless_a_gap_covers_it():
    publisher, client = good()
    client = without(client, k="msg", id=102)
    result = check(publisher, client)
    assert not result["ok"] and result["counts"]["lost"] == 1, result
    gap = {"k": "gap", "c": 0, "t": 3.0, "s": ROOM, "from": 2, "to": 2, "reason": "no_history"}
    assert check(publisher, client + [gap])["ok"]
    narrow = dict(gap, **{"from": 3, "to": 5})
    assert check(publisher, client + [narrow])["counts"]["lost"] == 1
    unknown_end = dict(gap, **{"from": 2, "to": 0, "reason": "hub_link_lost"})
    assert check(publisher, client + [unknown_end])["ok"]
    before = dict(gap, t=2.0)  # the gap came before the message was published
    assert check(publisher, client + [before])["counts"]["lost"] == 1


def test_a_message_out_of_order_is_dropped_by_the_client_and_so_lost():
    publisher, client = good()
    client = without(client, k="msg", id=102)
    client.append({"k": "dup", "c": 0, "t": 3.7, "s": ROOM, "e": "m1", "q": 2})
    result = check(publisher, client)
    assert result["counts"]["lost"] == 1 and result["counts"]["duplicates"] == 1


def test_two_messages_with_one_seq_are_two_messages():
    # a failover that loses an acknowledged write: the next message gets the
    # same seq; the client, having processed seq 3, drops the second one
    publisher, client = good()
    publisher = publisher[:-1] + pub_msg(4.0, "room", {"room": "1"}, 3, 104) + [END]
    client.append({"k": "dup", "c": 0, "t": 4.1, "s": ROOM, "e": "m1", "q": 3})
    result = check(publisher, client)
    assert result["counts"]["lost"] == 1 and "message 104" in result["problems"][0]


def test_the_publishers_side_counts():
    publisher, client = good()
    lost_publish = [r for r in publisher if not (r["k"] == "pub" and
                                                 r["env"].get("data") == {"id": 103})]
    client_no_103 = without(client, k="msg", id=103)
    result = check(lost_publish, client_no_103)
    assert result["counts"]["undelivered_calls"] == 1 and not result["ok"]
    assert not check([r for r in publisher if r["k"] != "end"], client)["ok"]
    leftover = [dict(r, outbox_left=2) if r["k"] == "end" else r for r in publisher]
    assert not check(leftover, client)["ok"]


def test_a_client_that_never_finished_fails_the_run():
    publisher, client = good()
    result = check(publisher, without(client, k="done"))
    assert not result["ok"] and "never finished" in result["problems"][0]


@pytest.mark.parametrize("defect", ["none", "stale"])
def test_the_verdict_does_not_depend_on_record_order(defect):
    publisher, client = good()
    if defect == "stale":
        client = without(client, k="inv", v=f"{E}:3")
    a = check(copy.deepcopy(publisher), copy.deepcopy(client))
    b = check(list(reversed(publisher)), list(reversed(client)))
    assert a["ok"] == b["ok"] and a["counts"]["stale"] == b["counts"]["stale"]


def test_the_counts_are_split_by_transport():
    # client 1 is an SSE copy of client 0 that missed the last invalidation:
    # the split says whose the stale context is
    publisher, client = good()
    sse = [dict(r, c=1) for r in without(client, k="inv", v=f"{E}:3")]
    sse.append({"k": "client", "c": 1, "t": 0.4, "tr": "sse"})
    sse.append({"k": "conn", "c": 1, "t": 4.0, "hub": "h2"})  # a reconnect
    result = check(publisher, client + sse)
    ws, over_sse = result["transports"]["ws"], result["transports"]["sse"]
    assert (ws["clients"], ws["deliveries"], ws["stale"], ws["reconnects"]) == (1, 5, 0, 0), ws
    assert (over_sse["clients"], over_sse["deliveries"], over_sse["stale"],
            over_sse["reconnects"]) == (1, 4, 1, 1), over_sse
    assert result["counts"]["stale"] == 1 and result["counts"]["clients"] == 2
    assert result["problems"][0].startswith(f"STALE sse client 1 {DOC}"), result["problems"]
    assert "| sse: clients=1 " in summary(result)
