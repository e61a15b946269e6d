#!/usr/bin/env python3
"""Check the library's layering: who may import whom, and no import circle.

    scripts/check_layers.py [--graph]

Reads every .rs file under src/ that belongs to the library (src/main.rs and
src/bin/ are other crates), finds each path into the crate (`use crate::...`,
`use crate::{a, b::{c, d}}`, `super::`, `self::`, a child module named in its
parent, and inline `crate::x::y` in code; comments and strings are skipped) and
resolves it to the file that defines the module. Rules:

- a file under src/measure/ imports nothing of the crate but base and measure;
- a file under src/backend/ imports nothing of measure, config, output, app, tune;
- a file under src/serve/ imports nothing of measure, config, output, app, tune, data;
- a file under src/base/ imports nothing of the crate but base;
- a file under src/agents/ imports nothing of the crate but base, measure and agents;
- the file-level import graph has no cycle, nor the folder-level one (a path
  `crate::x::y` is folder x; src/signals.rs is folder signals).

Prints one line per violation or cycle and exits 1, else prints "layers: ok".
With --graph, prints the file-level edges too. Python 3 standard library only.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")

# folder -> folders it must not import (None: only those in ALLOWED)
ALLOWED = {
    "measure": {"base", "measure"},
    "base": {"base"},
    "agents": {"base", "measure", "agents"},
}
FORBIDDEN = {
    "backend": {"measure", "config", "output", "app", "tune"},
    # `loadgen serve` serves backends; it measures, configures and reports nothing.
    "serve": {"measure", "config", "output", "app", "tune", "data"},
}


def strip(text):
    """Blank out comments, string and char literals, keeping offsets."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif re.match(r'b?r#*"', text[i:i + 20]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(b?r)(#*)"', text[i:])
            close = '"' + m.group(2)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            blank(i, j)
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:])
            if m:
                blank(i, i + m.end())
                i += m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


def module_files():
    """Module path (tuple) -> file path relative to ROOT, for the library."""
    mods = {}
    for dirpath, dirnames, filenames in os.walk(SRC):
        rel = os.path.relpath(dirpath, SRC)
        if rel == "bin" or rel.startswith("bin" + os.sep):
            continue
        parts = [] if rel == "." else rel.split(os.sep)
        for f in filenames:
            if not f.endswith(".rs"):
                continue
            if not parts and f == "main.rs":
                continue
            stem = f[:-3]
            if not parts and stem == "lib":
                path = ()
            elif stem == "mod":
                path = tuple(parts)
            else:
                path = tuple(parts) + (stem,)
            mods[path] = os.path.relpath(os.path.join(dirpath, f), ROOT)
    return mods


def parse_use_tree(s):
    """Expand a use tree (`a::{b, c::d as e}`) into lists of segments."""
    toks = re.findall(r"::|[{},*]|\w+", s)
    pos = 0

    def tree(prefix):
        nonlocal pos
        results = []
        path = list(prefix)
        while pos < len(toks):
            t = toks[pos]
            if t == "{":
                pos += 1
                while pos < len(toks) and toks[pos] != "}":
                    results += tree(path)
                    if pos < len(toks) and toks[pos] == ",":
                        pos += 1
                pos += 1
                return results
            if t in (",", "}"):
                break
            if t == "::":
                pos += 1
                continue
            if t == "as":
                pos += 2
                continue
            if t == "*":
                pos += 1
                continue
            if t == "self" and path:
                pos += 1
                continue
            path.append(t)
            pos += 1
        results.append(path)
        return results

    return tree([])


def inline_mod_depths(code):
    """Sorted list of (start, end, name) of inline `mod name { ... }` blocks."""
    blocks = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
            j += 1
        blocks.append((m.end(), j, m.group(1)))
    return blocks


def resolve(segs, here, inline, children, mods):
    """Module path of the file a path leads to, or None outside the crate."""
    if not segs:
        return None
    first = segs[0]
    if first == "crate":
        base, rest = [], segs[1:]
    elif first in ("super", "self"):
        base, rest, up_inline = list(here), segs, list(inline)
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                if up_inline:
                    up_inline.pop()
                elif base:
                    base.pop()
                else:
                    return None
            rest = rest[1:]
        if up_inline:  # still inside an inline module of this file
            return tuple(here)
    elif not inline and first in children:
        base, rest = list(here), segs
    else:
        return None
    full = base + list(rest)
    for k in range(len(full), -1, -1):
        if tuple(full[:k]) in mods:
            return tuple(full[:k])
    return None


def folder(modpath):
    return modpath[0] if modpath else "crate"


def imports(rel, here, mods):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
        code = strip(fh.read())
    blocks = inline_mod_depths(code)
    children = {m.group(1) for m in re.finditer(r"\bmod\s+(\w+)\s*;", code)}

    def inline_at(pos):
        return [name for (a, b, name) in blocks if a <= pos < b]

    found = []  # (module path, line)
    used = []
    for m in re.finditer(r"\buse\s+([^;]*);", code):
        used.append((m.start(), m.end()))
        inl = inline_at(m.start())
        line = code.count("\n", 0, m.start()) + 1
        for segs in parse_use_tree(m.group(1)):
            t = resolve(segs, here, inl, children, mods)
            if t is not None:
                found.append((t, line))
    pat = r"(?<![\w:])((?:crate|super|self)(?:\s*::\s*\w+)+)"
    kids = "|".join(sorted(children))
    if kids:
        pat = r"(?<![\w:])((?:crate|super|self|" + kids + r")(?:\s*::\s*\w+)+)"
    for m in re.finditer(pat, code):
        if any(a <= m.start() < b for a, b in used):
            continue
        segs = re.findall(r"\w+", m.group(1))
        t = resolve(segs, here, inline_at(m.start()), children, mods)
        if t is not None:
            found.append((t, code.count("\n", 0, m.start()) + 1))
    return found


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def one_cycle(comp, edges, start):
    """A shortest circle through start within its component, for the message."""
    comp = set(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ())):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in comp and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def main():
    show = "--graph" in sys.argv[1:]
    mods = module_files()
    problems = []
    fedges, dedges = {}, {}
    for here, rel in sorted(mods.items()):
        fedges.setdefault(rel, set())
        src_folder = folder(here)
        for target, line in imports(rel, here, mods):
            trel = mods[target]
            if trel == rel:
                continue
            tf = folder(target)
            fedges[rel].add(trel)
            if tf != src_folder:
                dedges.setdefault(src_folder, set()).add(tf)
            if target == ():
                continue
            allowed = ALLOWED.get(src_folder)
            if allowed is not None and tf not in allowed:
                problems.append(f"{rel}:{line}: {src_folder}/ imports crate::{'::'.join(target)} (only {', '.join(sorted(allowed))} allowed)")
            if tf in FORBIDDEN.get(src_folder, ()):
                problems.append(f"{rel}:{line}: {src_folder}/ imports crate::{'::'.join(target)} ({tf} is above it)")
    for kind, edges in (("file", fedges), ("folder", dedges)):
        seen = set()
        for comp in cycles(edges):
            for node in sorted(comp):
                circle = one_cycle(comp, edges, node)
                key = frozenset(circle)
                if key not in seen:
                    seen.add(key)
                    problems.append(f"{kind} cycle: " + " -> ".join(circle))
    if show:
        for a in sorted(fedges):
            for b in sorted(fedges[a]):
                print(f"{a} -> {b}")
    problems = list(dict.fromkeys(problems))
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s)")
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
