"""Which code a benchmark run measured: the sources whose change can move the
figures, and their SHA-256 digests.

A run records the digests of these files as the imported fastpe has them
(an installed fastpe carries its compiled sources as package data);
tools/render_figures.py compares them with a checkout's files to tell
whether the committed figures still describe the code. Standard library
only: the tool reads this file without importing fastpe.
"""

import glob
import hashlib
import os

# The sources whose change can move the figures, relative to the folder that
# holds the fastpe package: every compiled source (the kernels, the fast
# paths, the cache), the Python modules the fast paths and the front doors
# run through on every call (fastpe.torch's too, for the cases that time it),
# and the benchmark's own measuring code. A named file that no longer exists
# is an error (the list must follow renames).
FIGURE_SOURCES = (
    "fastpe/*.pyx",
    "fastpe/*.pxd",
    "fastpe/*.pxi",
    "fastpe/*.h",
    "fastpe/_runtime.py",
    "fastpe/_plan.py",
    "fastpe/_sinusoid.py",
    "fastpe/_rotary.py",
    "fastpe/torch/*.py",
    "fastpe/hf/*.py",
    "fastpe/bench/cases.py",
    "fastpe/bench/peers.py",
    "fastpe/bench/eager.py",
    "fastpe/bench/compiled.py",
    "fastpe/bench/hf_model.py",
    "fastpe/bench/measure.py",
)


class MissingSource(FileNotFoundError):
    """A file FIGURE_SOURCES names (not a pattern) is not there."""


def figure_sources(root, strict=True):
    """The files FIGURE_SOURCES selects under `root`, as sorted '/'-separated
    paths relative to it. A named file that is missing raises MissingSource
    (`strict`) or is left out (a run records what there is; the check of
    tools/render_figures.py is strict)."""
    found = set()
    for pattern in FIGURE_SOURCES:
        matches = glob.glob(os.path.join(root, *pattern.split("/")))
        if not matches and not glob.has_magic(pattern) and strict:
            raise MissingSource(f"{pattern} (named in fastpe/bench/provenance.py FIGURE_SOURCES) is not in {root}")
        found.update(os.path.relpath(path, root).replace(os.sep, "/") for path in matches)
    return sorted(found)


def digest(data):
    return hashlib.sha256(data).hexdigest()


def source_digests(root, strict=True):
    """{relative path: SHA-256 of its bytes} of the figure sources under `root`."""
    out = {}
    for path in figure_sources(root, strict):
        with open(os.path.join(root, *path.split("/")), "rb") as fh:
            out[path] = digest(fh.read())
    return out


def installed_root():
    """The folder holding the imported fastpe package."""
    import fastpe

    return os.path.dirname(os.path.dirname(os.path.abspath(fastpe.__file__)))
