#!/usr/bin/env python3
"""Import graph of a crate's files: an edge A -> B when A names a path
(crate::, super::, self::, or a child module) that resolves into file B.
Prints edges (optionally) and every strongly connected component > 1."""
import os, re, sys
root = sys.argv[1]           # e.g. agent/src
show = '-v' in sys.argv
def modpath(f):
    rel = os.path.relpath(f, root)[:-3]
    parts = rel.split('/')
    if parts == ['lib']: return ()
    if parts[-1] == 'mod': parts = parts[:-1]
    return tuple(parts)
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f); files[modpath(p)] = p
def strip(src):
    src = re.sub(r'//[^\n]*', '', src)
    src = re.sub(r'/\*.*?\*/', '', src, flags=re.S)
    src = re.sub(r'"(?:\\.|[^"\\])*"', '""', src)
    return src
def resolve(path):
    # deepest module with a file
    for i in range(len(path), -1, -1):
        if path[:i] in files: return path[:i]
tok = re.compile(r'\b(crate|super|self)((?:::\w+)*)(::\{)?')
def use_trees(src):
    # expand `prefix::{a, b::{c}}` groups to flat paths
    out = []
    for m in re.finditer(r'\b(crate|super|self)\s*::\s*', src):
        i = m.end(); start = m.start()
        # read a path tree
        def tree(i, prefix):
            paths = []
            seg = re.match(r'[\w:\s]*', src[i:]).group(0)
            j = i + len(seg)
            segs = [s for s in re.split(r'\s*::\s*', seg.strip()) if s]
            p = prefix + segs
            if j < len(src) and src[j] == '{':
                j += 1
                while True:
                    sub, j = tree(j, p)
                    paths += sub
                    while j < len(src) and src[j] in ' \n\t': j += 1
                    if j < len(src) and src[j] == ',': j += 1; continue
                    if j < len(src) and src[j] == '}': j += 1; break
                    if j >= len(src) or src[j] in ';)': break
                    j += 1
            else:
                paths.append(p)
            return paths, j
        ps, _ = tree(i, [m.group(1)])
        out += [(start, p) for p in ps]
    return out
def inline_mods(src):
    spans = []
    for m in re.finditer(r'\bmod\s+(\w+)\s*\{', src):
        depth, j = 1, m.end()
        while depth and j < len(src):
            depth += {'{': 1, '}': -1}.get(src[j], 0); j += 1
        spans.append((m.end(), j, m.group(1)))
    return spans
edges = {}
for mp, f in files.items():
    src = strip(open(f).read())
    # inline `mod tests {` blocks refer to `super` = this file; treat as self
    inline_super = set()
    deps = set()
    spans = inline_mods(src)
    for at, p in use_trees(src):
        head, rest = p[0], [s for s in p[1:] if s not in ('self', '*')]
        here = mp + tuple(n for (a, b, n) in spans if a <= at < b)
        if head == 'crate': base = ()
        elif head == 'self': base = here
        else:
            base = here[:-1]
            while rest and rest[0] == 'super': rest = rest[1:]; base = base[:-1]
        target = resolve(base + tuple(rest))
        if target is not None and target != mp: deps.add(target)
    # bare child-module paths (`streams::foo`, `use config::X`)
    for child in [k for k in files if len(k) == len(mp) + 1 and k[:len(mp)] == mp]:
        name = child[-1]
        if re.search(r'(?<![\w:])' + name + r'::', src):
            deps.add(resolve(child + ()))
    edges[mp] = deps
name = lambda m: '::'.join(m) or 'lib'
if show:
    for m in sorted(edges):
        for d in sorted(edges[m]): print(f'{name(m)} -> {name(d)}')
# Tarjan
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: sccs.append(c)
for v in edges:
    if v not in index: sc(v)
print(f'{len(files)} files, {sum(len(d) for d in edges.values())} edges')
for c in sccs: print('CYCLE:', ' <-> '.join(sorted(name(m) for m in c)))
sys.exit(1 if sccs else 0)
