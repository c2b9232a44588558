#!/usr/bin/env bash
# Build fastpe with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# test suite against that build.
#
#   tools/sanitize.sh                      # whole suite
#   tools/sanitize.sh tests/threads/test_fork.py   # any pytest arguments
#
# How:
#   * the working tree (including uncommitted tests) is copied into a
#     temporary directory and built there in place with FASTPE_SANITIZE=1
#     (setup.py adds -fsanitize=address,undefined -fno-omit-frame-pointer
#     -fno-sanitize-recover=undefined -O1 -g), so the repository's own build
#     is left alone;
#   * pytest runs with PYTHONPATH pointing at the copy, so the sanitized
#     extension is the one imported (checked before the run);
#   * the python binary itself is not instrumented, so the ASan runtime must
#     be the first library loaded into the process: LD_PRELOAD=libasan.so
#     (without it ASan aborts with "ASan runtime does not come first in
#     initial library list"); libubsan is preloaded next to it for the same
#     reason;
#   * ASAN_OPTIONS=detect_leaks=0: CPython deliberately does not free
#     everything at exit (interned strings, static types, module state, the
#     obmalloc arenas) and LeakSanitizer would report thousands of "leaks"
#     that are not fastpe's. Leaks are checked by tests/memory/test_memory.py and
#     tools/leak_check.py instead (tracemalloc + RSS);
#   * ASAN_OPTIONS=allocator_may_return_null=1: the tests ask for impossible sizes on
#     purpose (a MemoryError naming the shape and bytes is the contract);
#     ASan would abort on the request instead of letting malloc fail;
#   * PYTHONMALLOC=malloc: route Python's small-object allocator through
#     malloc so ASan sees (and red-zones) those blocks too;
#   * halt_on_error / -fno-sanitize-recover: the first report stops the run
#     with a non-zero status, so a finding cannot scroll by unnoticed.
#     Reports also go to $SANITIZE_LOG_DIR/asan.<pid> and ubsan.<pid>
#     (children, forked or spawned, write their own), and the script prints
#     them at the end.
#
# Exit status: pytest's status, or 1 if any sanitizer report was written.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastpe-sanitize.XXXXXX")"
keep="${KEEP_SANITIZE_DIR:-0}"
cleanup() { if [ "$keep" != 1 ]; then rm -rf "$work"; else echo "kept $work"; fi; }
trap cleanup EXIT

libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$libasan" "$libubsan"; do
    if [ ! -e "$lib" ]; then
        echo "sanitize.sh: $lib not found (gcc -print-file-name); install the gcc sanitizer runtimes" >&2
        exit 2
    fi
done

echo "== copy of the working tree in $work/src"
mkdir -p "$work/src"
# Everything but build products and caches: the copy must compile from source.
tar -C "$repo" \
    --exclude=.git --exclude=build --exclude=dist --exclude='*.so' --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache --exclude=.venv \
    --exclude='fastpe/*.c' \
    -cf - . | tar -C "$work/src" -xf -

echo "== sanitized build (FASTPE_SANITIZE=1; OpenMP required, as always)"
cd "$work/src" || exit 2
if ! FASTPE_SANITIZE=1 "$python" setup.py build_ext --inplace >"$work/build.log" 2>&1; then
    echo "sanitize.sh: the sanitized build FAILED; last lines of the build log:" >&2
    tail -n 40 "$work/build.log" >&2
    exit 2
fi
grep -E -- '-fsanitize=address' "$work/build.log" | tail -n 1 | cut -c1-300

log_dir="${SANITIZE_LOG_DIR:-$work/reports}"
mkdir -p "$log_dir"
export LD_PRELOAD="$libasan $libubsan${LD_PRELOAD:+ $LD_PRELOAD}"
# quarantine_size_mb: ASan keeps freed memory out of reuse (256 MiB by
# default) to catch use-after-free. 8 MiB still covers the allocations of a
# call, and fills during tests/memory/test_memory.py's warm-up, so its RSS bound
# measures fastpe, not the quarantine filling up.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=0:strict_init_order=1:detect_stack_use_after_return=0:quarantine_size_mb=8:log_path=$log_dir/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$log_dir/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$work/src"

echo "== check: the imported fastpe is the sanitized copy"
if ! "$python" - <<'EOF'
import os, sys
import fastpe
from fastpe import _kernels
build = _kernels.build_info()
src = os.environ["PYTHONPATH"]
ok = fastpe.__file__.startswith(src) and build["sanitize"]
print(f"fastpe from {os.path.dirname(fastpe.__file__)}; sanitize={build['sanitize']}; "
      f"openmp={build['openmp']}; compile args {build['compile_args']}")
sys.exit(0 if ok else 1)
EOF
then
    echo "sanitize.sh: the sanitized extension is not the one imported" >&2
    exit 2
fi

echo "== pytest under ASan/UBSan (LD_PRELOAD=$LD_PRELOAD)"
echo "   ASAN_OPTIONS=$ASAN_OPTIONS"
start=$(date +%s)
"$python" -m pytest -q -p no:cacheprovider "${@:-tests}"
status=$?
echo "== pytest exit status $status after $(( $(date +%s) - start )) s"

# With allocator_may_return_null, ASan notes each refused impossible size
# ("failed to allocate"): the tests ask for those on purpose, so a report
# file that holds nothing else is not a finding.
for f in "$log_dir"/*; do
    [ -e "$f" ] || continue
    if ! grep -v -q -e 'WARNING: AddressSanitizer failed to allocate' -e '^$' "$f"; then
        echo "== $(grep -c 'failed to allocate' "$f") refused impossible allocation(s) noted in $(basename "$f") (expected)"
        rm -f "$f"
    fi
done
reports=$(ls "$log_dir" 2>/dev/null | wc -l)
if [ "$reports" -gt 0 ]; then
    echo "== SANITIZER REPORTS ($reports file(s) in $log_dir):"
    for f in "$log_dir"/*; do
        echo "---- $f"
        head -n 60 "$f"
    done
    keep=1
    [ "$status" -eq 0 ] && status=1
else
    echo "== no sanitizer reports"
    if [ "$status" -ne 0 ]; then
        # UBSan may print to the process's stderr instead of log_path, and
        # halt_on_error ends the process: pytest's capture then shows nothing.
        echo "== pytest failed: rerun the failing tests with -s to see a sanitizer message on stderr"
    fi
fi
exit "$status"
