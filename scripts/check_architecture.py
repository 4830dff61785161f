#!/usr/bin/env python3
"""Check the workspace's crate graph against docs/ARCHITECTURE.md.

The document holds the graph twice over, in forms a reader and this script share:
  - a ```mermaid block between `<!-- crate-graph -->` markers: one `a --> b` line per normal
    (non-dev) dependency of a workspace crate on another, `a -.-> b` when it is optional (a
    cargo feature turns it on);
  - a ```text block between `<!-- crate-rules -->` markers: `a never b` lines, meaning crate a
    must not depend on crate b at all, not even through others (normal dependencies that are
    always on: an optional one behind a feature, such as a test-support feature, does not count).
  - a ```text block between `<!-- module-dag -->` markers: crates whose modules must form a
    DAG (no module uses one that uses it back, through `crate::`, `super::` or child paths,
    outside `#[cfg(test)] mod tests`; `mod x;` is containment, not use).
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


def module_edges(src_root):
    """Module -> modules it uses, for one crate's src/ (a regex reading, good for our style)."""
    mods = {}
    for path in sorted(Path(src_root).rglob("*.rs")):
        rel = list(path.relative_to(src_root).with_suffix("").parts)
        if rel[-1] == "mod":
            rel = rel[:-1]
        mods["::".join(rel) if rel not in (["lib"], ["main"]) else "lib"] = path

    def resolve(p):  # the longest module prefix of a crate path; else an item of the root
        parts = p.split("::")
        for n in range(len(parts), 0, -1):
            if "::".join(parts[:n]) in mods:
                return "::".join(parts[:n])
        return "lib"

    ident = r"[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)*"
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        src = re.split(r"#\[cfg\(test\)\]\s*mod tests", path.read_text())[0]
        src = re.sub(r"//[^\n]*", "", src)
        parent = "::".join(m.split("::")[:-1]) if "::" in m else ""
        for u in re.finditer(r"\buse\s+(crate|super|self)?(?:::)?([^;]*);", src, re.S):
            head, body = u.group(1), " ".join(u.group(2).split())
            if head is None:  # `use child::X` or an external crate
                first = body.split("::")[0].strip("{ ")
                child = f"{m}::{first}" if m != "lib" else first
                if child in mods:
                    edges[m].add(child)
                continue
            base = {"crate": "", "super": parent, "self": "" if m == "lib" else m}[head]
            prefix, _, group = body.partition("{")
            prefix = prefix.strip().rstrip(":")
            for name in (group.rstrip("} ").split(",") if group else [""]):
                name = name.split(" as ")[0].strip().strip("{}").split("::{")[0]
                full = "::".join(x for x in (base, prefix, name) if x and x != "self")
                if full and resolve(full) != m:
                    edges[m].add(resolve(full))
        for c in re.finditer(r"\bcrate::(" + ident + ")", src):
            if resolve(c.group(1)) != m:
                edges[m].add(resolve(c.group(1)))
        for c in re.finditer(r"(?<![A-Za-z0-9_:])super::(" + ident + ")", src):
            t = resolve("::".join(x for x in (parent, c.group(1)) if x))
            if t != m:
                edges[m].add(t)
        for child in mods:  # paths relative to this module: `bus::X` inside `signal`
            if child != "lib" and ("::".join(child.split("::")[:-1]) or "lib") == m:
                last = child.split("::")[-1]
                for c in re.finditer(r"(?<![A-Za-z0-9_:])" + last + "::(" + ident + ")", src):
                    edges[m].add(resolve(child + "::" + c.group(1)))
    return edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


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
    for a, arrow, b in edges:
        if arrow == "-->":
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
    for crate in block(text, "module-dag", "text"):
        src = ROOT / "crates" / crate / "src"
        if not src.is_dir():
            problems.append(f"the module-dag list names {crate}, which has no crates/{crate}/src")
            continue
        for comp in cycles(module_edges(src)):
            problems.append(f"{crate}: modules that use each other: {' <-> '.join(comp)}")
    if problems:
        print("check_architecture: the crate graph and docs/ARCHITECTURE.md disagree:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        print("(scripts/check_architecture.py --print shows the code's edges)", file=sys.stderr)
        sys.exit(1)
    print(f"check_architecture: {len(edges)} edges and the rules of {DOC.name} hold")


if __name__ == "__main__":
    main()
