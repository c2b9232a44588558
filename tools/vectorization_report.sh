#!/usr/bin/env bash
# Which leaf loops of fastpe/_simd.h the compiler vectorises, per clone level.
# Usage: bash tools/vectorization_report.sh [extra gcc flags]
# Compiles the header alone (with a stub that takes the address of each leaf
# function so none is discarded) using the build's optimisation flags, and
# prints GCC's -fopt-info-vec report, one line per vectorised loop.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/leaf.c" <<'C'
#include "_simd.h"
void *fpe_leaf_functions[] = {
    (void *)fpe_advance, (void *)fpe_step_store_f32, (void *)fpe_step_store_f64,
    (void *)fpe_step_add_inplace_f32, (void *)fpe_step_add_inplace_f64,
    (void *)fpe_step_add_to_f32, (void *)fpe_step_add_to_f64,
    (void *)fpe_store_f32, (void *)fpe_store_f64, (void *)fpe_add_inplace_f32,
    (void *)fpe_add_inplace_f64, (void *)fpe_add_to_f32, (void *)fpe_add_to_f64,
    (void *)fpe_probe_add_f32, (void *)fpe_probe_fill_f32,
};
C
gcc -O3 -fno-math-errno -fno-trapping-math -fPIC -I"$repo/fastpe" "$@" \
    -fopt-info-vec-optimized -c "$work/leaf.c" -o "$work/leaf.o" 2>&1 \
  | sed -e "s#$repo/##" | grep -E "optimized: loop vectorized" | sort | uniq -c
