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
# argument checks (_validation), the float64 formulas, the reader of the RoPE
# scalings and their frequency rules (_rope, uncached), and the type aliases
# of the public signatures.
REFERENCE_MAY_IMPORT = {"_validation", "_formulas", "_rope", "_typing"}


def module_names():
    """{top-level module: [its source files]}: a subpackage of fastpe is one
    node, made of every .py file under it; a Cython module is its .pyx file
    and the .pxi parts it includes, read for their Python-level imports; a
    module known by its stub alone has none."""
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
            # compiled; its Python-level imports count, those of its parts (stem_*.pxi) too
            names[stem] = [path] + [os.path.join(ROOT, part) for part in sorted(os.listdir(ROOT))
                                    if part.startswith(stem + "_") and part.endswith(".pxi")]
        elif ext == ".pyi" and stem not in names:
            names[stem] = []
    return names


def _python_imports(path, text):
    """A Cython file's Python-level import statements (one per line, those
    inside functions too), as Python source: cimports are compile-time and
    leave no edge. The .pxi parts of a module are read with it."""
    if not path.endswith((".pyx", ".pxi")):
        return text
    lines = [line.strip() for line in text.splitlines()
             if line.strip().startswith(("import ", "from ")) and " cimport " not in line]
    return "\n".join(lines)


def _dotted_package(path):
    """The dotted package a source file lives in: fastpe or fastpe.<subpackage>..."""
    folder = os.path.relpath(os.path.dirname(path), os.path.dirname(ROOT))
    return folder.replace(os.sep, ".")


ROOT_MODULE = "__init__"


def imports_of(path, known):
    """The top-level package modules that the file at `path` imports, at any
    depth. A name taken from the package root (``from fastpe import
    __version__``, ``from . import x`` where x is not a module, ``import
    fastpe``) is an import of the root module, __init__."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(_python_imports(path, f.read()), path)
    package = _dotted_package(path).split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            if module == [PACKAGE]:  # from fastpe import a, b: each a module, or a name of the root
                found.update(alias.name if alias.name in known else ROOT_MODULE for alias in node.names)
            elif len(module) > 1 and module[0] == PACKAGE:
                found.add(module[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.add(parts[1] if len(parts) > 1 else ROOT_MODULE)
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
