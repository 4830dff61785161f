#!/usr/bin/env python3
"""Check the workspace's crate graph against docs/ARCHITECTURE.md.

The document holds the graph twice over, in forms a reader and this script share:
  - a ```mermaid block between `<!-- crate-graph -->` markers: one `a --> b` line per normal
    (non-dev) dependency of a workspace crate on another, `a -.-> b` when it is optional (a
    cargo feature turns it on);
  - a ```text block between `<!-- crate-rules -->` markers: `a never b` lines, meaning crate a
    must not depend on crate b at all, not even through others (normal dependencies).
It fails, saying what differs, when the code's graph (from `cargo metadata`) and the document
disagree or a rule is broken. `--print` prints the code's edges in the document's form.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def code_edges():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT))
    names = {p["name"] for p in meta["packages"]}
    edges = set()
    for p in meta["packages"]:
        for d in p["dependencies"]:
            if d["kind"] is None and d["name"] in names and d["name"] != p["name"]:
                edges.add((p["name"], "-.->" if d["optional"] else "-->", d["name"]))
    return names, edges


def block(text, marker, lang):
    m = re.search(rf"<!-- {marker} -->\s*```{lang}\n(.*?)```", text, re.S)
    if not m:
        sys.exit(f"check_architecture: {DOC.name} has no ```{lang} block after <!-- {marker} -->")
    return [l.strip() for l in m.group(1).splitlines() if l.strip() and not l.strip().startswith("%%")]


def main():
    names, edges = code_edges()
    if "--print" in sys.argv:
        for a, arrow, b in sorted(edges):
            print(f"    {a} {arrow} {b}")
        return
    text = DOC.read_text()
    doc_edges = set()
    for line in block(text, "crate-graph", "mermaid"):
        m = re.fullmatch(r"([\w-]+)\s*(-->|-\.->)\s*([\w-]+)", line)
        if m:
            doc_edges.add(m.groups())
    problems = []
    for a, arrow, b in sorted(edges - doc_edges):
        problems.append(f"{a} {arrow} {b} is in Cargo.toml, not in the graph of {DOC.name}")
    for a, arrow, b in sorted(doc_edges - edges):
        problems.append(f"{a} {arrow} {b} is in the graph of {DOC.name}, not in Cargo.toml")
    reach = {n: set() for n in names}
    for a, _, b in edges:
        reach[a].add(b)
    def closure(n):
        seen, todo = set(), [n]
        while todo:
            for d in reach.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen
    for line in block(text, "crate-rules", "text"):
        m = re.fullmatch(r"([\w-]+)\s+never\s+([\w-]+)(?:\s*#.*)?", line)
        if not m:
            problems.append(f"cannot read the rule '{line}' (want: CRATE never CRATE)")
            continue
        a, b = m.groups()
        for n in (a, b):
            if n not in names:
                problems.append(f"the rule '{line}' names {n}, which is not a workspace crate")
        if b in closure(a):
            problems.append(f"rule broken: {a} depends on {b} (directly or through others)")
    if problems:
        print("check_architecture: the crate graph and docs/ARCHITECTURE.md disagree:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        print("(scripts/check_architecture.py --print shows the code's edges)", file=sys.stderr)
        sys.exit(1)
    print(f"check_architecture: {len(edges)} edges and the rules of {DOC.name} hold")


if __name__ == "__main__":
    main()
