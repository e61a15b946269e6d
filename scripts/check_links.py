#!/usr/bin/env python3
"""Check the user documentation (issue 42): links, anchors, length, references.

    python3 scripts/check_links.py

In README.md, CHANGELOG.md and docs/*.md:
  - every relative link or image ([text](path), [text](path#anchor), [ref]: path)
    names a file or folder that exists, relative to the file it is in;
  - every #anchor names a heading of its target (GitHub's rule: lowercase, drop
    punctuation but - and _, spaces to -, -1, -2 ... for repeats) or an HTML id;
  - no line names a machine path (/work/..., /root/...);
  - no line cites "SPEC §" without naming CONTRACT on the same line.
README.md has at most 300 lines. In the code and scripts (src/, scripts/, tests/,
testkit/, scenarios/, schema/, build.rs, Dockerfiles) every "SPEC §" names CONTRACT too.

Prints one line per finding (FILE:LINE: what) and exits 1 if there is any; stdlib only.
"""

import os
import re
import sys
from urllib.parse import unquote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_MAX_LINES = 300
# Split so that this file does not match itself.
SPEC = "SPEC" + " §"
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root)/")
CODE_DIRS = ["src", "scripts", "tests", "testkit", "scenarios", "schema"]
CODE_FILES = ["build.rs", "Dockerfile.cpu", "Dockerfile.gpu", "Cargo.toml"]
SKIP_DIRS = {"target", ".git", "out", "node_modules", "__pycache__"}

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"""<a\s+[^>]*(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def doc_files():
    files = ["README.md", "CHANGELOG.md"]
    docs = os.path.join(ROOT, "docs")
    if os.path.isdir(docs):
        files += sorted(
            os.path.join("docs", f) for f in os.listdir(docs) if f.endswith(".md")
        )
    return [f for f in files if os.path.isfile(os.path.join(ROOT, f))]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def prose_lines(lines):
    """(line number, text) of the lines outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(lines, 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def slug(text):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


_anchor_cache = {}


def anchors(path):
    """Every anchor a Markdown file defines: its headings' slugs and HTML ids."""
    if path not in _anchor_cache:
        found, seen = set(), {}
        for _, line in prose_lines(read_lines(path)):
            for m in HTML_ID.finditer(line):
                found.add(m.group(1))
            h = HEADING.match(line)
            if not h:
                continue
            s = slug(h.group(2))
            if s in seen:
                seen[s] += 1
                found.add(f"{s}-{seen[s]}")
            else:
                seen[s] = 0
                found.add(s)
        _anchor_cache[path] = found
    return _anchor_cache[path]


def links(line):
    """The link targets of one line of prose, code spans left out."""
    text = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
    out = [m.group(1) for m in INLINE_LINK.finditer(text)]
    ref = REF_LINK.match(text)
    if ref:
        out.append(ref.group(1))
    return out


def check_link(doc, target):
    """Why `target`, linked from `doc`, does not resolve; None when it does."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
        return None
    path, _, frag = target.partition("#")
    path = unquote(path)
    if path:
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path))
        if not full.startswith(ROOT + os.sep) and full != ROOT:
            return f"link {target} leaves the repository"
        if not os.path.exists(full):
            return f"link {target}: no such file"
    else:
        full = doc
    if frag:
        if not full.endswith(".md") or os.path.isdir(full):
            return None  # anchors into code or other files are not checked
        if unquote(frag) not in anchors(full):
            return f"link {target}: no heading #{frag} in {os.path.relpath(full, ROOT)}"
    return None


def check_docs(findings):
    for rel in doc_files():
        path = os.path.join(ROOT, rel)
        lines = read_lines(path)
        if rel == "README.md":
            n = len(lines) - (1 if lines and lines[-1] == "" else 0)
            if n > README_MAX_LINES:
                findings.append(f"README.md: {n} lines, at most {README_MAX_LINES}")
        for n, line in enumerate(lines, 1):
            if MACHINE_PATH.search(line):
                findings.append(f"{rel}:{n}: a machine path (/work/, /root/)")
            if SPEC in line and "CONTRACT" not in line:
                findings.append(f"{rel}:{n}: '{SPEC}' without its docs/CONTRACT.md section")
        for n, line in prose_lines(lines):
            for target in links(line):
                why = check_link(path, target)
                if why:
                    findings.append(f"{rel}:{n}: {why}")


def code_files():
    for d in CODE_DIRS:
        top = os.path.join(ROOT, d)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [x for x in dirnames if x not in SKIP_DIRS and not x.startswith(".venv")]
            for f in filenames:
                yield os.path.join(dirpath, f)
    for f in CODE_FILES:
        if os.path.isfile(os.path.join(ROOT, f)):
            yield os.path.join(ROOT, f)


def check_code(findings):
    for path in code_files():
        try:
            lines = read_lines(path)
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        rel = os.path.relpath(path, ROOT)
        for n, line in enumerate(lines, 1):
            if SPEC in line and "CONTRACT" not in line:
                findings.append(f"{rel}:{n}: '{SPEC}' without its docs/CONTRACT.md section")


def main():
    if len(sys.argv) > 1:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    findings = []
    check_docs(findings)
    check_code(findings)
    for f in findings:
        print(f)
    if findings:
        sys.stdout.flush()
        print(f"check_links: {len(findings)} finding(s)", file=sys.stderr)
        return 1
    print(f"links: ok ({len(doc_files())} documents)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
