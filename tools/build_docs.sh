#!/usr/bin/env bash
# Build the documentation and run every example in it, against an installed fastpe.
#
#   bash tools/build_docs.sh PYTHON
#
# PYTHON: an interpreter where fastpe and the `docs` extra are installed
# (pip install ".[docs]"). Everything runs from a temporary directory, so
# the source tree beside this script cannot shadow the installed package.
# Steps, each failing the script on any warning or failing example:
#   1. sphinx-build -W --keep-going -b html     (the site; warnings are errors)
#   2. sphinx-build -W --keep-going -b doctest  (every >>> example of the pages
#      and of the docstrings autodoc pulls into them)
#   3. pytest --doctest-modules --pyargs fastpe (the docstring examples of
#      every module, including those the pages do not show)
# The HTML is left in $FASTPE_DOCS_OUT when that is set, else removed.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash tools/build_docs.sh PYTHON" >&2
    exit 2
fi
python=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fastpe-docs.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

where=$("$python" -c "import fastpe, os; print(os.path.dirname(fastpe.__file__))")
echo "build_docs: fastpe $("$python" -c "import fastpe; print(fastpe.__version__)") from $where"

out=${FASTPE_DOCS_OUT:-$work/html}
echo "build_docs: [1/3] sphinx-build -b html -> $out"
"$python" -m sphinx -W --keep-going -q -b html -d "$work/doctrees" "$repo/docs" "$out"

echo "build_docs: [2/3] sphinx-build -b doctest"
"$python" -m sphinx -W --keep-going -q -b doctest -d "$work/doctrees" "$repo/docs" "$work/doctest"
tail -n 4 "$work/doctest/output.txt"

echo "build_docs: [3/3] pytest --doctest-modules --pyargs fastpe"
# An empty configuration of our own: no pyproject or pytest.ini above the
# temporary directory may change the options; warnings are errors as in the
# test suite.
printf '[pytest]\n' > "$work/pytest.ini"
"$python" -m pytest -q -p no:cacheprovider -c "$work/pytest.ini" --rootdir "$work" -W error \
    --doctest-modules --pyargs fastpe
