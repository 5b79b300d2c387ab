#!/usr/bin/env python3
"""Layering checks (issue 15), as TAP lines for tests/run.sh.

1. Includes point one way between modules: gateway -> router/upstream ->
   pool/health -> core (a folder is a module; its header is its face).
2. No two object files of the product call into each other in a circle:
   the graph "file A uses a symbol file B defines" (nm over build/obj) has
   no cycle, so every file can be read knowing only what is below it.

Usage: python3 tests/layers.py [build-dir]   (default build)
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")

# what each module may include from the others
ALLOWED = {
    "core": set(),
    "health": {"core"},
    "pool": {"core"},
    "policy": {"core"},
    "router": {"core", "policy"},
    "upstream": {"core", "pool", "health"},
    "gateway": {"core", "router", "upstream", "pool", "health", "policy"},
    "echo": {"core"},
    "k8s": {"core", "router", "upstream"},
}

results = []


def check(ok, what, detail=""):
    results.append((ok, what, detail))


def includes():
    inc = re.compile(r'^\s*#\s*include\s+"\.\./([a-z0-9_]+)/([^"]+)"', re.M)
    for mod, allowed in sorted(ALLOWED.items()):
        d = os.path.join(ROOT, mod)
        if not os.path.isdir(d):
            continue
        bad = []
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
                for m in inc.finditer(f.read()):
                    if m.group(1) not in allowed:
                        bad.append(f"{mod}/{name} includes ../{m.group(1)}/{m.group(2)}")
        check(not bad, f"{mod}/ includes " + (f"only {', '.join(sorted(allowed))}" if allowed else "nothing") + " from other modules",
              "; ".join(bad))


def objects():
    objdir = os.path.join(BUILD, "obj")
    out = []
    for mod in ("core", "health", "pool", "policy", "router", "upstream", "gateway", "k8s"):
        d = os.path.join(objdir, mod)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith(".o") and name != "main.o":
                out.append(os.path.join(d, name))
    return out


def call_graph(objs):
    defs, uses = {}, {}
    for o in objs:
        key = os.path.relpath(o, os.path.join(BUILD, "obj"))[:-2] + ".c"
        text = subprocess.run(["nm", "-g", o], capture_output=True, text=True, check=True).stdout
        uses[key] = set()
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                uses[key].add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBRVWC":
                defs[parts[2]] = key
    graph = {k: set() for k in uses}
    for k, syms in uses.items():
        for s in syms:
            if s in defs and defs[s] != k:
                graph[k].add(defs[s])
    return graph


def cycles(graph):
    """Tarjan's strongly connected components of more than one file."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    includes()
    objs = objects()
    if not objs:
        check(False, f"object files found under {BUILD}/obj", "build first (make all)")
    else:
        graph = call_graph(objs)
        check(len(graph) >= 20, f"call graph over {len(graph)} product object files")
        found = cycles(graph)
        check(not found, "no two product files call into each other in a circle",
              "; ".join(" <-> ".join(c) for c in found))
    failed = 0
    for i, (ok, what, detail) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {what}")
        if not ok:
            failed += 1
            print(f"#   {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
