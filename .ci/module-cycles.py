#!/usr/bin/env python3
"""Fails when the top-level modules of a workspace crate depend on each other in a cycle.

For every crate root of the workspace (each member's src/lib.rs, src/main.rs and src/bin/*.rs,
and the root package's), it follows the `mod` declarations, reads the `use` trees and the inline
`crate::`, `super::` and `self::` paths of the production code, and maps each to the top-level
module it names (`crate::tls::store::X` is module `tls`; a name the crate root re-exports,
`crate::ProxyConfig`, is the module it comes from). A reference from one top-level module to
another is an edge; references inside one top-level module (a child using `super::`) are not.

Test code is skipped: items under `#[cfg(test)]` and files named tests.rs. Comments and string
literals are skipped too, so an intra-doc link is not a dependency (rustdoc resolves it without
the modules depending on each other at compile time).

Usage: module-cycles.py [--graph] [--self-test] [WORKSPACE]   (default: the parent of .ci/)
Exit status 1, with each cycle and the lines behind its edges, when any crate has a cycle.
"""

import os
import re
import sys
import tempfile

MAX_CYCLES = 50


# ---- Lexing: blank out comments, strings and char literals, keeping offsets and newlines.


def strip(src):
    out = list(src)
    i, n = 0, len(src)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif re.match(r'b?r#*"', src[i : i + 260]) and not _ident_char(src, i - 1):
            m = re.match(r'b?r(#*)"', src[i:])
            end = src.find('"' + m.group(1), i + m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 2)
                j = n if j < 0 else j + 1
                blank(i, j)
                i = j
            elif i + 2 < n and src[i + 2] == "'":
                blank(i, i + 3)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def _ident_char(src, i):
    return i >= 0 and (src[i].isalnum() or src[i] == "_")


def matching(text, open_at):
    """The offset just past the bracket closing the one at `open_at`."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = [pairs[text[open_at]]]
    j = open_at + 1
    while j < len(text) and stack:
        c = text[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c == stack[-1]:
            stack.pop()
        j += 1
    return j


def blank_test_items(text):
    """Blanks every item under `#[cfg(test)]` (a `mod tests { .. }`, a `mod tests;`, a fn, a use)."""
    out = list(text)
    for m in re.finditer(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", text):
        j = m.end()
        while j < len(text):
            c = text[j]
            if c == ";":
                j += 1
                break
            if c == "{":
                j = matching(text, j)
                break
            if c in "([":
                j = matching(text, j)
                continue
            j += 1
        for k in range(m.start(), j):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out)


# ---- Paths: use trees and inline paths, resolved to top-level modules.


def flatten_use(tree):
    """`crate::{a::B, c::{D, E as F}}` -> [["crate","a","B"], ["crate","c","D"], ["crate","c","E"]]."""
    tokens = re.findall(r"::|[{},*]|\w+", tree)
    pos = 0

    def parse_tree(prefix):
        nonlocal pos
        paths = []
        path = list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    paths += parse_tree(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return paths
            if t in (",", "}"):
                break
            if t == "as":
                pos += 2
                continue
            if t != "::":
                path.append(t)
            pos += 1
        if path != list(prefix) or not paths:
            paths.append(path)
        return paths

    return parse_tree([])


def resolve(segments, module):
    """The absolute path (from the crate root) that `segments`, written in `module`, names; or
    None when it is relative to something else (an extern crate, a name in scope)."""
    if not segments:
        return None
    head = segments[0]
    if head == "crate":
        return segments[1:]
    if head == "self":
        return list(module) + segments[1:]
    if head == "super":
        base = list(module)
        k = 0
        while k < len(segments) and segments[k] == "super":
            if not base:
                return None
            base.pop()
            k += 1
        return base + segments[k:]
    return None


class Crate:
    def __init__(self, root, rel):
        self.root = root  # the crate root file
        self.rel = rel  # how to show paths
        self.files = []  # (path, module path, cleaned text)
        self.top = set()  # top-level modules
        self.reexports = {}  # name re-exported at the root -> top-level module
        self.edges = {}  # (from, to) -> first "file:line"

    def load(self):
        self._walk(self.root, [], os.path.dirname(self.root))
        self.top = {m[0] for _, m, _ in self.files if m}
        for path, module, text in self.files:
            if module:
                continue
            for m in re.finditer(r"\buse\s+([^;]+);", text):
                for seg, alias in _use_names(m.group(1)):
                    absolute = resolve(seg, []) if seg[0] in ("crate", "self", "super") else seg
                    if absolute and absolute[0] in self.top and len(absolute) > 1:
                        self.reexports[alias] = absolute[0]
        for path, module, text in self.files:
            if module:
                self._scan(path, module, text)
        return self

    def _walk(self, path, module, child_dir):
        if os.path.basename(path) == "tests.rs":
            return
        with open(path, encoding="utf-8") as f:
            text = blank_test_items(strip(f.read()))
        self.files.append((path, module, text))
        for m in re.finditer(r"(?<![\w:])mod\s+(\w+)\s*;", text):
            name = m.group(1)
            for candidate in (
                os.path.join(child_dir, name + ".rs"),
                os.path.join(child_dir, name, "mod.rs"),
            ):
                if os.path.isfile(candidate):
                    grandchildren = os.path.join(child_dir, name)
                    self._walk(candidate, module + [name], grandchildren)
                    break

    def _scan(self, path, module, text):
        # `pub(in crate::x)` is a visibility, not a dependency.
        text = re.sub(r"pub\s*\(\s*in\s[^)]*\)", lambda m: " " * len(m.group(0)), text)
        inline = _inline_modules(text)
        refs = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            for seg in flatten_use(m.group(1)):
                refs.append((m.start(), seg))
        text_no_use = re.sub(r"\buse\s+[^;]+;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
        for m in re.finditer(r"(?<![\w$])(?:crate|super|self)(?:\s*::\s*\w+)+", text_no_use):
            refs.append((m.start(), re.findall(r"\w+", m.group(0))))
        for offset, seg in refs:
            here = module + [name for name, a, b in inline if a <= offset < b]
            absolute = resolve(seg, here)
            if not absolute:
                continue
            target = absolute[0]
            if target not in self.top:
                target = self.reexports.get(target)
            if target is None or target == module[0]:
                continue
            line = text.count("\n", 0, offset) + 1
            where = "%s:%d" % (os.path.relpath(path, self.rel), line)
            self.edges.setdefault((module[0], target), where)


def _use_names(tree):
    """(path, the name it is bound to) for each leaf of a use tree."""
    result = []
    for part in flatten_use(tree):
        alias = part[-1]
        m = re.search(r"\b%s\s+as\s+(\w+)" % re.escape(alias), tree)
        result.append((part, m.group(1) if m else alias))
    return result


def _inline_modules(text):
    """(name, start, end) of each `mod name { .. }` in a file."""
    found = []
    for m in re.finditer(r"(?<![\w:])mod\s+(\w+)\s*\{", text):
        found.append((m.group(1), m.end() - 1, matching(text, m.end() - 1)))
    return found


# ---- Cycles.


def cycles(nodes, edges):
    """Elementary cycles, each once (rotated to start at its smallest module), at most MAX_CYCLES."""
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    order = sorted(nodes)
    found = []
    for start in order:
        # Only cycles whose smallest module is `start`: each is found once.
        stack = [(start, [start])]
        while stack and len(found) < MAX_CYCLES:
            node, path = stack.pop()
            for nxt in reversed(succ.get(node, [])):
                if nxt == start:
                    found.append(path + [start])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return found


def crate_roots(workspace):
    """The crate root files of the workspace: its members' and the root package's."""
    with open(os.path.join(workspace, "Cargo.toml"), encoding="utf-8") as f:
        manifest = f.read()
    dirs = []
    m = re.search(r"members\s*=\s*\[([^\]]*)\]", manifest)
    if m:
        dirs += re.findall(r'"([^"]+)"', m.group(1))
    if re.search(r"^\[package\]", manifest, re.M):
        dirs.append(".")
    roots = []
    for d in dirs:
        src = os.path.join(workspace, d, "src")
        for name in ("lib.rs", "main.rs"):
            if os.path.isfile(os.path.join(src, name)):
                roots.append(os.path.join(src, name))
        bins = os.path.join(src, "bin")
        if os.path.isdir(bins):
            for entry in sorted(os.listdir(bins)):
                p = os.path.join(bins, entry)
                if entry.endswith(".rs"):
                    roots.append(p)
                elif os.path.isfile(os.path.join(p, "main.rs")):
                    roots.append(os.path.join(p, "main.rs"))
    return roots


def check(workspace, graph=False, out=sys.stdout):
    """Prints each crate's cycles (and with `graph` its edges); returns the number of cycles."""
    total = 0
    for root in crate_roots(workspace):
        crate = Crate(root, workspace).load()
        name = os.path.relpath(root, workspace)
        found = cycles(crate.top, crate.edges)
        total += len(found)
        print(
            "%s: %d modules, %d edges, %s"
            % (name, len(crate.top), len(crate.edges), "%d cycle(s)" % len(found) if found else "acyclic"),
            file=out,
        )
        if graph:
            for (a, b), where in sorted(crate.edges.items()):
                print("  %s -> %s  (%s)" % (a, b, where), file=out)
        for cycle in found:
            print("  cycle: " + " -> ".join(cycle), file=out)
            for a, b in zip(cycle, cycle[1:]):
                print("    %s -> %s  at %s" % (a, b, crate.edges[(a, b)]), file=out)
        if len(found) >= MAX_CYCLES:
            print("  (stopped at %d cycles)" % MAX_CYCLES, file=out)
    return total


# ---- The check's own test, on hand-written crates.

SELF_TEST = {
    "Cargo.toml": '[workspace]\nmembers = ["cyclic", "acyclic"]\n',
    "cyclic/src/lib.rs": "mod a;\nmod b;\npub mod c;\nmod d;\npub use d::Deep;\n",
    # a -> b through a use tree; b -> a through an inline path.
    "cyclic/src/a.rs": "use crate::{b::{B, B2 as Other}, c};\npub struct A;\n",
    "cyclic/src/b.rs": "pub struct B;\npub struct B2;\nfn f() { let _ = crate::a::A; }\n",
    # c -> d only through the root's re-export; d's child names c through super::super.
    "cyclic/src/c/mod.rs": "mod child;\npub fn g() -> crate::Deep { todo!() }\n",
    "cyclic/src/c/child.rs": "use super::g;\n",
    "cyclic/src/d.rs": "mod inner { pub fn h() { super::super::c::g(); } }\npub struct Deep;\n",
    "acyclic/src/lib.rs": "mod a;\nmod b;\nmod c;\n",
    # Every reference back to `a` is in a comment, a string, a test or a visibility.
    "acyclic/src/a.rs": "mod child;\nuse crate::b::B;\npub(crate) struct A;\n",
    "acyclic/src/a/child.rs": "use super::A;\nuse super::super::b;\n",
    "acyclic/src/b.rs": (
        "//! See [`crate::a::A`].\n"
        "pub(in crate::b) struct B;\n"
        'const S: &str = "crate::a::A";\n'
        "const R: &str = r#\"crate::a \"quoted\"\"#;\n"
        "fn life<'a>(x: &'a str) -> char { '\"' }\n"
        "/* crate::a::A /* nested */ crate::a */\n"
        "#[cfg(test)]\nmod tests { use crate::a::A; }\n"
        "#[cfg(test)]\nfn helper() { crate::a::A; }\n"
        "#[cfg(test)]\nmod more;\n"
    ),
    "acyclic/src/b/more.rs": "use crate::a::A;\n",
    "acyclic/src/b/tests.rs": "use crate::a::A;\n",
    "acyclic/src/c.rs": "use crate::a;\n",
}


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        for rel, body in SELF_TEST.items():
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(body)
        roots = crate_roots(tmp)
        cyclic = Crate(roots[0], tmp).load()
        acyclic = Crate(roots[1], tmp).load()

    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    expect("cyclic edges", sorted(cyclic.edges), [("a", "b"), ("a", "c"), ("b", "a"), ("c", "d"), ("d", "c")])
    expect("cyclic cycles", cycles(cyclic.top, cyclic.edges), [["a", "b", "a"], ["c", "d", "c"]])
    expect("acyclic edges", sorted(acyclic.edges), [("a", "b"), ("c", "a")])
    expect("acyclic cycles", cycles(acyclic.top, acyclic.edges), [])
    expect(
        "use tree",
        flatten_use("crate::{a::B, c::{D, E as F}, self}"),
        [["crate", "a", "B"], ["crate", "c", "D"], ["crate", "c", "E"], ["crate", "self"]],
    )
    expect("longer cycle", cycles({"x", "y", "z"}, {("x", "y"): 0, ("y", "z"): 0, ("z", "x"): 0}), [["x", "y", "z", "x"]])
    for failure in failures:
        print("self-test FAILED: " + failure)
    if not failures:
        print("self-test passed")
    return not failures


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if "--self-test" in argv:
        return 0 if self_test() else 1
    workspace = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    workspace = os.path.normpath(workspace)
    found = check(workspace, graph="--graph" in argv)
    if found:
        print("module cycles found: %d (a module's dependency must not lead back to it)" % found)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
