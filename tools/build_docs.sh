#!/usr/bin/env bash
# Build the documentation and run every example in it, against an installed fastpe.
#
#   bash tools/build_docs.sh PYTHON
#
# PYTHON: an interpreter where fastpe and the `docs` extra are installed
# (`pip install ".[docs]"`, the command docs/install.rst gives). The build
# runs from a temporary directory, so the source tree beside this script
# cannot shadow the installed package.
# Steps, each failing the script on any warning or failing example:
#   1. sphinx-build -W --keep-going -b html     (the site; warnings are errors)
#   2. sphinx-build -W --keep-going -b doctest  (every >>> example of the pages
#      and of the docstrings autodoc pulls into them)
#   3. pytest --doctest-modules --pyargs fastpe (the docstring examples of
#      every module, including those the pages do not show)
# Steps 2 and 3 leave out the examples of docs/conf.py's EXAMPLES_RUN_BY_TESTS
# (they need transformers, which the docs extra does not bring); the test
# named there runs them.
#
# The HTML: docs/_build/html beside this script (gitignored), or the folder
# $FASTPE_DOCS_OUT names. A previous build there is replaced; a folder that
# holds anything else is refused before building. The script prints where the
# HTML is.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash tools/build_docs.sh PYTHON" >&2
    exit 2
fi
python=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$("$python" -c 'import os, sys; print(os.path.abspath(sys.argv[1]))' "${FASTPE_DOCS_OUT:-$repo/docs/_build/html}")
# .buildinfo: the file every Sphinx HTML build writes at the top of its output.
if [ -e "$out" ] && [ ! -e "$out/.buildinfo" ] && [ -n "$(ls -A "$out")" ]; then
    echo "build_docs: $out holds files of no Sphinx build; not replacing it (set FASTPE_DOCS_OUT to another folder)" >&2
    exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/fastpe-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

where=$("$python" -c "import fastpe, os; print(os.path.dirname(fastpe.__file__))")
echo "build_docs: fastpe $("$python" -c "import fastpe; print(fastpe.__version__)") from $where"

echo "build_docs: [1/3] sphinx-build -b html"
"$python" -m sphinx -W --keep-going -q -b html -d "$work/doctrees" "$repo/docs" "$work/html"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$work/html" "$out"
echo "build_docs: HTML in $out (open $out/index.html)"

echo "build_docs: [2/3] sphinx-build -b doctest"
"$python" -m sphinx -W --keep-going -q -b doctest -d "$work/doctrees" "$repo/docs" "$work/doctest"
tail -n 4 "$work/doctest/output.txt"

echo "build_docs: [3/3] pytest --doctest-modules --pyargs fastpe"
# The packages whose examples a test runs instead (docs/conf.py), as folders for --ignore.
ignores=$("$python" - "$repo/docs/conf.py" <<'PY'
import importlib.util
import os
import runpy
import sys

for package, _test in runpy.run_path(sys.argv[1])["EXAMPLES_RUN_BY_TESTS"].values():
    print("--ignore=" + os.path.dirname(importlib.util.find_spec(package).origin))
PY
)
left_out=()
[ -z "$ignores" ] || mapfile -t left_out <<<"$ignores"
# An empty configuration of our own: no pyproject or pytest.ini above the
# temporary directory may change the options; warnings are errors as in the
# test suite.
printf '[pytest]\n' > "$work/pytest.ini"
"$python" -m pytest -q -p no:cacheprovider -c "$work/pytest.ini" --rootdir "$work" -W error \
    --doctest-modules --pyargs fastpe "${left_out[@]}"
echo "build_docs: passed; HTML in $out"
