"""Build of the fastpe extension: Cython kernels with OpenMP when the compiler has it.

Environment switches:
  FASTPE_DISABLE_OPENMP=1   build without OpenMP (serial kernels).
  FASTPE_REQUIRE_OPENMP=1   fail the build instead of warning when OpenMP is missing (release builds).
  FASTPE_NATIVE=1           add -march=native (local builds only; never for wheels).
  FASTPE_SANITIZE=1         build with AddressSanitizer and UndefinedBehaviorSanitizer.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST_PROGRAM = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
    """
)


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def openmp_flag_candidates(compiler_type):
    """(compile args, link args) pairs that enable OpenMP, to try in order."""
    if compiler_type == "msvc":
        # MSVC (Windows wheels): OpenMP 2.0, enough for prange. /openmp makes
        # the objects name vcomp's import library; the linker needs no flag.
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag: the preprocessor flag plus
        # LLVM's libomp, whose keg-only include and lib directories come from
        # CPPFLAGS and LDFLAGS (the macOS wheels set them). A GCC or LLVM clang
        # with its own runtime takes the plain -fopenmp instead.
        return [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def compiler_supports_openmp(compiler, compile_args, link_args):
    """Compile, link and run a tiny OpenMP program: the only reliable test."""
    tmpdir = tempfile.mkdtemp(prefix="fastpe-omp-")
    try:
        source = os.path.join(tmpdir, "omp_test.c")
        with open(source, "w") as fh:
            fh.write(OPENMP_TEST_PROGRAM)
        objects = compiler.compile([source], output_dir=tmpdir, extra_postargs=compile_args)
        if compiler.compiler_type != "msvc":
            # distutils links executables without LDFLAGS, shared objects with
            # them: add them so the test finds the runtime the extension will.
            link_args = link_args + shlex.split(os.environ.get("LDFLAGS", ""))
        compiler.link_executable(objects, "omp_test", output_dir=tmpdir, extra_postargs=link_args)
        exe = compiler.executable_filename("omp_test", output_dir=tmpdir)  # omp_test.exe on Windows
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        return out.returncode == 0 and out.stdout.strip() == "1"
    except Exception:
        return False
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


class BuildExtWithOpenMP(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        compile_args, link_args = [], []
        use_openmp = False
        if not _flag("FASTPE_DISABLE_OPENMP"):
            for omp_compile, omp_link in openmp_flag_candidates(ctype):
                use_openmp = compiler_supports_openmp(self.compiler, omp_compile, omp_link)
                if use_openmp:
                    compile_args += omp_compile
                    link_args += omp_link
                    break
            else:
                message = (
                    "fastpe: the C compiler cannot build OpenMP programs; "
                    "building SERIAL kernels (set FASTPE_REQUIRE_OPENMP=1 to make this an error)"
                )
                if _flag("FASTPE_REQUIRE_OPENMP"):
                    raise RuntimeError(message)
                print("\n" + "*" * 78 + "\n" + message + "\n" + "*" * 78 + "\n", file=sys.stderr)
        if ctype == "msvc":
            # /std:c11: MSVC's C compiler knows _simd.h's `restrict` only in
            # C11 mode (a /Drestrict=__restrict would break the UCRT headers'
            # __declspec(restrict)).
            compile_args += ["/O2", "/fp:precise", "/std:c11"]
        else:
            # -O3 turns on the loop vectoriser; -fno-math-errno lets sin/cos be
            # fused into sincos. No -ffast-math: it would break NaN/inf checks
            # and IEEE rounding that the accuracy contract relies on.
            compile_args += ["-O3", "-fno-math-errno", "-fno-trapping-math"]
            if _flag("FASTPE_NATIVE"):
                compile_args += ["-march=native"]
            if _flag("FASTPE_SANITIZE"):
                sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
                compile_args += sanitize + ["-O1", "-g"]
                link_args += sanitize
        build_info = {
            "openmp": use_openmp,
            "compiler": " ".join(getattr(self.compiler, "compiler_so", None) or [ctype]),
            "extra_compile_args": compile_args,
            "extra_link_args": link_args,
            "native": _flag("FASTPE_NATIVE"),
            "sanitize": _flag("FASTPE_SANITIZE"),
        }
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args) + compile_args
            ext.extra_link_args = list(ext.extra_link_args) + link_args
            if use_openmp:
                ext.define_macros = list(ext.define_macros) + [("FASTPE_OPENMP", "1")]
        self._write_build_info(build_info)
        super().build_extensions()

    def _write_build_info(self, info):
        """Record how the extension was built, for fastpe.show_config()."""
        text = "# Generated by setup.py at build time.\nBUILD_INFO = " + repr(info) + "\n"
        for root in {self.build_lib, os.path.dirname(os.path.abspath(__file__))}:
            if root is None:
                continue
            target = os.path.join(root, "fastpe", "_build_info.py")
            if os.path.isdir(os.path.dirname(target)):
                with open(target, "w") as fh:
                    fh.write(text)


def _extension(name):
    return Extension(
        f"fastpe.{name}",
        [f"fastpe/{name}.pyx"],
        include_dirs=[numpy.get_include(), "fastpe"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_21_API_VERSION")],
    )


# _kernels: the sinusoid, rotary and learned-table kernels; _bias_kernels:
# additive attention biases (ALiBi, T5 buckets), which index scores, not rows.
extensions = [_extension("_kernels"), _extension("_bias_kernels")]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "cpow": True,
        },
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
