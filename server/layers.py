#!/usr/bin/env python3
"""The hub's layers, checked two ways (server/README.md draws them).

  layers.py --includes server/src        every #include "mh_*.h" names a header
                                         of the module's own layer or a lower one
  layers.py --objects BUILD [--tap]      no modules call each other in a circle:
                                         an edge A->B when A's object file has an
                                         undefined symbol B's object defines (nm)

Exit 1 on a violation, with each one named."""
import collections
import glob
import os
import re
import subprocess
import sys

# lowest first; main.c (the top) may include anything
LAYERS = ["core", "redis", "auth", "route", "net"]


def check_includes(src):
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    where = {}
    for layer in LAYERS:
        for h in glob.glob(os.path.join(src, layer, "*.h")):
            where[os.path.basename(h)] = layer
    bad = []
    for layer in LAYERS:
        for f in sorted(glob.glob(os.path.join(src, layer, "*.[ch]"))):
            for n, line in enumerate(open(f, encoding="utf-8"), 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m or m.group(1) not in where:
                    continue  # protocol/ headers and system headers are below everything
                up = where[m.group(1)]
                if rank[up] > rank[layer]:
                    bad.append(f"{os.path.relpath(f, src)}:{n}: includes {m.group(1)} of layer "
                               f"'{up}', above '{layer}'")
    for b in bad:
        print(b)
    return not bad


def check_objects(build, tap):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
    objs = []
    for o in sorted(glob.glob(os.path.join(build, "server", "CMakeFiles", "*", "src", "**", "*.o"),
                              recursive=True)):
        # only objects whose source is still there (a build directory keeps
        # the objects of files moved or deleted since)
        rel = o.split(os.sep + "src" + os.sep, 1)[1][: -len(".o")]
        if os.path.exists(os.path.join(src, rel)):
            objs.append(o)
    if not objs:
        print(f"no object files under {build}/server")
        return False
    defs, uses = {}, collections.defaultdict(set)
    name = lambda o: os.path.basename(o).split(".")[0]
    for o in objs:
        out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBRC":
                defs[p[2]] = name(o)
            elif len(p) == 2 and p[0] == "U":
                uses[name(o)].add(p[1])
    mods = sorted({name(o) for o in objs})
    g = {m: {defs[s] for s in uses[m] if s in defs and defs[s] != m} for m in mods}
    # strongly connected components (iterative Tarjan)
    index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
    for root in mods:
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        sccs.append(sorted(comp))
    ok = not sccs
    if tap:
        print(f"{'ok' if ok else 'not ok'} 1 - server modules: {len(mods)}, "
              f"call circles: {len(sccs)}")
        print("1..1")
    for c in sccs:
        print(("# " if tap else "") + "circle: " + " ".join(c))
    return ok


def main(argv):
    if len(argv) >= 2 and argv[0] == "--includes":
        return 0 if check_includes(argv[1]) else 1
    if len(argv) >= 2 and argv[0] == "--objects":
        return 0 if check_objects(argv[1], "--tap" in argv) else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
