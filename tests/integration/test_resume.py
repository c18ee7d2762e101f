"""Context resume (SPEC 10): the version hash `mizan:v:{C}` with e, n, u and
bucket fields, compared with a subscribe frame's `since`."""

from __future__ import annotations

from itertools import combinations

from hubtest import bucket, canonical_key, connect, run

HASH = "mizan:v:user"


def _buckets_of(params: dict) -> set[int]:
    """Buckets of every non-empty subset of a subscription's params."""
    items = sorted(params.items())
    return {bucket(canonical_key("user", dict(sub)))
            for k in range(1, len(items) + 1) for sub in combinations(items, k)}


def _other_user(avoid: set[int]) -> tuple[str, int]:
    for n in range(6, 1000):
        b = bucket(canonical_key("user", {"user_id": str(n)}))
        if b not in avoid:
            return str(n), b
    raise AssertionError("no free bucket")


def test_context_resume(hub, r):
    p5 = {"user_id": "5"}
    p5tab = {"user_id": "5", "tab": "a"}
    b5 = bucket(canonical_key("user", p5))
    assert canonical_key("user", {"user_id": 5}) == '["user",{"user_id":"5"}]'
    other, b_other = _other_user(_buckets_of(p5tab))
    p7 = {f"k{i}": str(i) for i in range(7)}

    async def resume(since, params=p5, ref="x"):
        """Subscribes with since; every frame up to the ack, then checks
        nothing else follows."""
        c = await connect(hub)
        await c.send({"action": "subscribe", "context": "user", "params": params,
                      "since": since, "ref": ref})
        got = []
        while not (got and got[-1].get("subscribed")):
            got.append(await c.recv())
        got += await c.ping_barrier()
        await c.close()
        return got

    def ack(version, params=p5, ref="x"):
        return {"subscribed": True, "context": "user", "params": params, "version": version,
                "ref": ref}

    def is_resume(frame, version, params=p5):
        if frame.get("invalidate") != [{"context": "user", "params": params}] or \
                frame.get("reason") != "resume":
            return False
        extra = set(frame) - {"invalidate", "reason", "versions", "spread_ms", "ts"}
        return not extra and frame.get("versions", {"user": version}) == {"user": version}

    async def main():
        failures = []

        async def case(name, since, want_resume, version, params=p5):
            got = await resume(since, params)
            if want_resume:
                ok = len(got) == 2 and is_resume(got[0], version, params) and \
                    got[1] == ack(version, params)
                want = f"[invalidate {params} reason resume, ack {version}]"
            else:
                ok = got == [ack(version, params)]
                want = f"[ack {version}] only"
            if not ok:
                failures.append(f"{name}: since {since!r}, hash {r.hgetall(HASH)}: "
                                f"expected {want}, got {got}")

        r.hset(HASH, mapping={"e": "k2f9a", "n": 42, "u": 10, str(b5): 30})
        await case("same version", "k2f9a:42", False, "k2f9a:42")
        await case("since 0:0, context published", "0:0", True, "k2f9a:42")
        await case("older, nothing matching since", "k2f9a:35", False, "k2f9a:42")
        r.hset(HASH, mapping={"n": 43, "u": 43})
        await case("unscoped entry after since", "k2f9a:42", True, "k2f9a:43")
        r.hset(HASH, mapping={"n": 44, str(b_other): 44})
        await case(f"scoped entry for user_id={other} only", "k2f9a:43", False, "k2f9a:44")
        r.hset(HASH, mapping={"n": 45, str(b5): 45})
        await case("scoped entry for own params", "k2f9a:44", True, "k2f9a:45")
        await case("epoch changed", "zz9:45", True, "k2f9a:45")
        await case("counter behind since (data loss)", "k2f9a:50", True, "k2f9a:45")
        # Subsets: a sub with {user_id, tab} is hit by an entry naming user_id only.
        r.hset(HASH, mapping={"n": 46, str(b5): 46})
        await case("entry on a subset of the params", "k2f9a:45", True, "k2f9a:46", p5tab)
        r.hset(HASH, mapping={"n": 47, str(b_other): 47})
        await case("two params, other scope only", "k2f9a:46", False, "k2f9a:47", p5tab)
        # More than 6 params: any newer event invalidates.
        r.hset(HASH, mapping={"n": 48})
        await case("more than 6 params", "k2f9a:47", True, "k2f9a:48", p7)
        # The hash lost: since != 0:0 -> invalidate; the new version is 0:0.
        r.delete(HASH)
        await case("hash gone", "k2f9a:48", True, "0:0")
        await case("no hash, since 0:0", "0:0", False, "0:0")
        assert not failures, "\n".join(failures)

        # since that is not a version: bad_version, still subscribed and invalidated.
        r.hset(HASH, mapping={"e": "k2f9a", "n": 50})
        got = await resume("not a version", ref="bv")
        errors = [f for f in got if "error" in f]
        acks = [i for i, f in enumerate(got) if f.get("subscribed")]
        invs = [i for i, f in enumerate(got) if "invalidate" in f]
        assert len(got) == 3 and len(errors) == 1 and len(acks) == 1 and len(invs) == 1, got
        assert errors[0]["error"]["code"] == "bad_version" and errors[0].get("ref") == "bv", got
        assert got[acks[0]] == ack("k2f9a:50", ref="bv"), got
        assert got[invs[0]]["invalidate"] == [{"context": "user", "params": p5}], got
        assert invs[0] < acks[0], f"the invalidation must come before the ack: {got}"

    run(main())
