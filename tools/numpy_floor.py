"""Print the oldest NumPy release pyproject.toml allows (its `numpy>=X` dependency).

.ci/run installs exactly that release (`numpy==X`) with the test extra and
runs the whole suite, so the floor stated in one place is the floor tested.
Exits with status 1 (and says why) when there is no such dependency.

    python tools/numpy_floor.py [pyproject.toml]
"""

import os
import re
import sys

try:
    import tomllib
except ImportError:  # Python < 3.11
    sys.exit("tools/numpy_floor.py needs Python >= 3.11 (tomllib)")


def numpy_floor(project):
    """X of the `numpy>=X` entry of [project] dependencies, or a ValueError."""
    for requirement in project.get("dependencies", []):
        found = re.fullmatch(r"numpy\s*>=\s*([0-9][0-9.]*)", requirement.strip())
        if found:
            return found.group(1)
    raise ValueError("pyproject.toml has no `numpy>=X` dependency")


def main(argv):
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
    path = argv[1] if len(argv) > 1 else default
    with open(path, "rb") as fh:
        project = tomllib.load(fh)["project"]
    try:
        print(numpy_floor(project))
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
