"""The error for a fastpe folder whose compiled kernels are missing.

Imported only when importing the kernels failed, so a working install pays
nothing for it."""

import importlib.machinery
import os

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_KERNEL_MODULES = ("_kernels", "_frontdoor")


def _missing_kernels():
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return [
        name
        for name in _KERNEL_MODULES
        if not any(os.path.exists(os.path.join(_PACKAGE_DIR, name + suffix)) for suffix in suffixes)
    ]


def raise_if_unbuilt():
    """Raise a clear ImportError when the compiled kernels are not in the
    package folder (a source tree that was never built). Return when they
    are there: then the original error (a broken build, a missing runtime)
    is the one to see."""
    missing = _missing_kernels()
    if not missing:
        return
    root = os.path.dirname(_PACKAGE_DIR)
    source_tree = os.path.exists(os.path.join(root, "setup.py"))
    where = "the fastpe source folder" if source_tree else "a fastpe folder"
    hint = ""
    if source_tree and _is_current_folder(root):
        hint = (" You are in that source folder, and Python imports from the current folder "
                "first, even when fastpe is installed: `cd ..` is enough.")
    raise ImportError(
        f"fastpe was imported from {_PACKAGE_DIR}, {where} without compiled kernels "
        f"(no {', '.join(missing)} extension for this Python).{hint} Either run Python from "
        "another folder, so that the installed fastpe is imported (install it with "
        "`pip install .`), or build the kernels in place with `pip install -e .` "
        "from the repository root."
    ) from None  # the original error blames a circular import


def _is_current_folder(path):
    try:
        return os.path.samefile(os.getcwd(), path)
    except OSError:  # the current folder was removed
        return False
