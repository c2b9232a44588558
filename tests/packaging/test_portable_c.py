"""_simd.h without GCC's vector extensions (MSVC has none): the scalar
fallback of fpe_skip gives the bits of the vector loop.

A small C program includes the header twice over, once as the build sees it
and once with FASTPE_NO_VECTOR_EXTENSIONS (the switch that compilers without
the extension take), and prints the state after many rotations by fpe_skip
and by as many fpe_advance calls. The four results must agree bit for bit.
"""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from fastpe import _kernels
from util import REPO_ROOT as REPO

HEADER_DIR = os.path.join(REPO, "fastpe")

PROGRAM = r"""
#include <math.h>
#include <stdio.h>
#include "_simd.h"

enum { N = 75, STEPS = 300 }; /* two strips of 32 frequencies and a tail */

int main(void)
{
    double s[N], c[N], s_ref[N], c_ref[N], cw[N], sw[N];
    for (int k = 0; k < N; k++) {
        double w = pow(10000.0, -(double)k / N);
        cw[k] = cos(w);
        sw[k] = sin(w);
        s[k] = s_ref[k] = sin(3.0 * w);
        c[k] = c_ref[k] = cos(3.0 * w);
    }
    fpe_skip(s, c, cw, sw, N, STEPS);
    for (int i = 0; i < STEPS; i++) fpe_advance(s_ref, c_ref, cw, sw, N);
    printf("vector extensions %d\n", FPE_VECTOR_EXTENSIONS);
    for (int k = 0; k < N; k++) printf("%a %a %a %a\n", s[k], c[k], s_ref[k], c_ref[k]);
    return 0;
}
"""


def _compiler():
    if sys.platform == "win32":
        pytest.skip("the test drives a POSIX C compiler")
    if not os.path.exists(os.path.join(HEADER_DIR, "_simd.h")):
        pytest.skip("fastpe's C headers are not beside the tests (an installed test tree)")
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    return cc


def _run(tmp_path, name, defines):
    """Compile PROGRAM with the build's optimisation flags, run it, return
    (the vector extensions flag, [(s, c, s_ref, c_ref) hex strings per frequency])."""
    flags = [f for f in _kernels.build_info()["compile_args"] if not f.startswith(("-fopenmp", "-fsanitize", "/"))]
    source = tmp_path / "skip.c"
    source.write_text(PROGRAM)
    exe = tmp_path / name
    subprocess.run([_compiler(), *flags, *defines, "-I", HEADER_DIR, str(source), "-o", str(exe), "-lm"],
                   check=True, capture_output=True, text=True, timeout=120)
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=60).stdout.splitlines()
    return int(lines[0].split()[-1]), [tuple(line.split()) for line in lines[1:]]


def test_fpe_skip_without_vector_extensions_gives_the_vector_bits(tmp_path):
    vector_flag, vector = _run(tmp_path, "vector", [])
    scalar_flag, scalar = _run(tmp_path, "scalar", ["-DFASTPE_NO_VECTOR_EXTENSIONS"])
    assert (vector_flag, scalar_flag) == (1, 0)
    assert len(vector) == len(scalar) == 75
    for k, (v, s) in enumerate(zip(vector, scalar)):
        assert v[:2] == v[2:], f"frequency {k}: fpe_skip and fpe_advance differ with vector extensions"
        assert s[:2] == s[2:], f"frequency {k}: fpe_skip and fpe_advance differ without vector extensions"
        assert v == s, f"frequency {k}: the two builds differ"
