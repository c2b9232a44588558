#!/usr/bin/env python3
"""Print fastpe's internal import graph and check its layering rules.

    python tools/import_graph.py [--check] [--dot]

Reads the package's sources with ``ast`` (nothing is imported), counting
imports at any depth, function-level ones included. With ``--check`` it exits
non-zero when

* two modules import each other through any chain (a cycle), or
* an implementation module imports the reference (``reference`` or
  ``_reference_bias``): the reference checks the implementation, so the
  implementation must not lean on it (only the package's ``__init__`` and
  the benchmark, which times the two side by side, may import it), or
* the reference imports anything from the package beyond the modules listed
  in ``REFERENCE_MAY_IMPORT``.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

PACKAGE = "fastpe"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
REFERENCE = {"reference", "_reference_bias"}
REFERENCE_USERS = {"__init__", "bench"}
# What the reference shares with the implementation, deliberately: the
# argument checks (_validation and its rotary part, which also reads and
# applies the RoPE scalings) and the float64 formulas.
REFERENCE_MAY_IMPORT = {"_validation", "_formulas"}


def module_names():
    """{top-level module: [its source files]}: a subpackage of fastpe is one
    node, made of every .py file under it; a Cython module is its .pyx file,
    read for its Python-level imports; a module known by its stub alone has none."""
    names = {}
    for entry in sorted(os.listdir(ROOT)):
        path = os.path.join(ROOT, entry)
        stem, ext = os.path.splitext(entry)
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "__init__.py")):
            names[entry] = [os.path.join(folder, name) for folder, _, files in sorted(os.walk(path))
                            for name in sorted(files) if name.endswith(".py")]
        elif ext == ".py":
            names[stem] = [path]
        elif ext == ".pyx":
            names[stem] = [path]  # compiled; its Python-level imports count
        elif ext == ".pyi" and stem not in names:
            names[stem] = []
    return names


def _python_imports(path, text):
    """A Cython file's Python-level import statements (one per line), as Python
    source: cimports are compile-time and leave no edge."""
    if not path.endswith(".pyx"):
        return text
    lines = [line for line in text.splitlines()
             if line.startswith(("import ", "from ")) and " cimport " not in line]
    return "\n".join(lines)


def _dotted_package(path):
    """The dotted package a source file lives in: fastpe or fastpe.<subpackage>..."""
    folder = os.path.relpath(os.path.dirname(path), os.path.dirname(ROOT))
    return folder.replace(os.sep, ".")


def imports_of(path, known):
    """The top-level package modules that the file at `path` imports, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(_python_imports(path, f.read()), path)
    package = _dotted_package(path).split(".")
    targets = []  # absolute dotted names
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            if node.module is None or module == [PACKAGE]:  # from . import a, b: each may be a module
                targets.extend(module + [alias.name] for alias in node.names)
            targets.append(module)
        elif isinstance(node, ast.Import):
            targets.extend(alias.name.split(".") for alias in node.names)
    found = {parts[1] for parts in targets if len(parts) > 1 and parts[0] == PACKAGE}
    return {name for name in found if name in known}


def graph():
    known = module_names()
    edges = {}
    for name, paths in known.items():
        targets = set()
        for path in paths:
            targets |= imports_of(path, known)
        edges[name] = sorted(targets - {name})
    return edges


def cycles(edges):
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def problems(edges):
    found = [f"import cycle: {' <-> '.join(component)}" for component in cycles(edges)]
    for module, targets in sorted(edges.items()):
        if module in REFERENCE_USERS | REFERENCE:
            continue
        for target in targets:
            if target in REFERENCE:
                found.append(f"{module} imports the reference module {target}")
    for module in sorted(REFERENCE & set(edges)):
        for target in edges[module]:
            if target not in REFERENCE_MAY_IMPORT | REFERENCE:
                found.append(f"the reference module {module} imports {target}, which is not shared by design")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a layering rule is broken")
    parser.add_argument("--dot", action="store_true", help="print the graph in Graphviz dot syntax")
    args = parser.parse_args(argv)
    edges = graph()
    if args.dot:
        print("digraph fastpe {")
        for module, targets in sorted(edges.items()):
            for target in targets:
                print(f'  "{module}" -> "{target}";')
        print("}")
    else:
        for module, targets in sorted(edges.items()):
            print(f"{module:18} -> {', '.join(targets) if targets else '-'}")
    found = problems(edges)
    for problem in found:
        print("PROBLEM:", problem, file=sys.stderr)
    if not found:
        print("no cycle; the implementation does not import the reference", file=sys.stderr)
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
