"""Build of the fastpe extensions: Cython kernels with OpenMP loops.

Environment switches:
  FASTPE_OPENMP=0    build serial kernels (no OpenMP); show_config() then
                     reports openmp False. Without it, a compiler that cannot
                     build OpenMP code fails the build.
  FASTPE_NATIVE=1    add -march=native (local builds only; never for wheels).
  FASTPE_SANITIZE=1  build with AddressSanitizer and UndefinedBehaviorSanitizer.

Everything the build generates (the Cython C files, the header that records
how the extensions were built) goes into build_ext's build_temp; the source
tree gets only the compiled modules of an in-place or editable build.
"""

import glob
import json
import os
import shlex
import sys
import tempfile
import textwrap

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError

OPENMP_TEST_PROGRAM = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
    }
    """
)

# The header compiled into _kernels: fastpe._kernels.build_info() returns it.
BUILD_INFO_HEADER = "_fastpe_build_info.h"

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _flag(name, default=False):
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{name}={os.environ[name]!r}: expected one of {', '.join(_ON + _OFF)}")


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


def compiler_builds_openmp(compiler, compile_args, link_args):
    """Compile and link (never run: cross builds) a tiny OpenMP program.

    Returns None when it builds, else the compile or link error."""
    with tempfile.TemporaryDirectory(prefix="fastpe-omp-") as tmpdir:
        source = os.path.join(tmpdir, "omp_test.c")
        with open(source, "w") as fh:
            fh.write(OPENMP_TEST_PROGRAM)
        if compiler.compiler_type != "msvc":
            # distutils links executables without LDFLAGS, shared objects with
            # them: add them so the test finds the runtime the extension will.
            link_args = link_args + shlex.split(os.environ.get("LDFLAGS", ""))
        try:
            objects = compiler.compile([source], output_dir=tmpdir, extra_postargs=compile_args)
            compiler.link_executable(objects, "omp_test", output_dir=tmpdir, extra_postargs=link_args)
        except (CompileError, LinkError) as exc:
            return exc
    return None


def _c_string(text):
    # A C string literal: JSON escapes " and \ as C does; non-ASCII text (a
    # compiler path) becomes \uXXXX, which C reads as the same character.
    return json.dumps(text, ensure_ascii=True)


class BuildExtWithOpenMP(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        compile_args, link_args = [], []
        use_openmp = _flag("FASTPE_OPENMP", default=True)
        if use_openmp:
            compile_args, link_args = self._openmp_flags(ctype)
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
            "compile_args": compile_args,
            "link_args": link_args,
            "native": _flag("FASTPE_NATIVE"),
            "sanitize": _flag("FASTPE_SANITIZE"),
        }
        generated = os.path.join(self.build_temp, "fastpe-generated")
        header = self._write_build_info_header(generated, build_info)
        from Cython.Build import cythonize

        # cythonize returns copies without build_ext's bookkeeping: only their
        # C sources are taken over.
        translated = cythonize(
            self.extensions,
            build_dir=os.path.join(generated, "cython"),
            # cdivision is set where it is meant (fastpe/_kernels.pyx's header),
            # not here: elsewhere `//` and `%` keep Python's meaning.
            compiler_directives={
                "language_level": "3",
                "boundscheck": False,
                "wraparound": False,
            },
            force=self.force,
            quiet=True,
        )
        c_sources = {ext.name: ext.sources for ext in translated}
        for ext in self.extensions:
            ext.sources = c_sources[ext.name]
            ext.include_dirs = list(ext.include_dirs) + [generated]
            ext.depends = list(ext.depends) + [header]
            ext.extra_compile_args = list(ext.extra_compile_args) + compile_args
            ext.extra_link_args = list(ext.extra_link_args) + link_args
        super().build_extensions()

    def _openmp_flags(self, ctype):
        """The first candidate's flags that build an OpenMP program, or a build error."""
        errors = []
        for omp_compile, omp_link in openmp_flag_candidates(ctype):
            error = compiler_builds_openmp(self.compiler, omp_compile, omp_link)
            if error is None:
                return list(omp_compile), list(omp_link)
            errors.append(f"  {' '.join(omp_compile)}: {error}")
        raise CompileError(
            "fastpe: the C compiler cannot build an OpenMP program; tried\n"
            + "\n".join(errors)
            + "\nInstall a compiler with OpenMP (GCC; on macOS LLVM's libomp, see "
            "pyproject.toml's cibuildwheel settings), or build serial kernels, which "
            "run on one thread, with FASTPE_OPENMP=0 (show_config() then reports openmp False)."
        )

    @staticmethod
    def _write_build_info_header(directory, info):
        """Record how the extensions are built in a header compiled into them.

        Rewritten only when it changes, so that an unchanged build stays up to date."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, BUILD_INFO_HEADER)
        text = (
            "/* Generated by setup.py: how fastpe's extensions were built. */\n"
            f"#define FPE_BUILD_INFO_JSON {_c_string(json.dumps(info, sort_keys=True))}\n"
        )
        try:
            with open(path) as fh:
                unchanged = fh.read() == text
        except OSError:
            unchanged = False
        if not unchanged:
            with open(path, "w") as fh:
                fh.write(text)
        return path


def _extension(name):
    return Extension(
        f"fastpe.{name}",
        [f"fastpe/{name}.pyx"],
        include_dirs=[numpy.get_include(), "fastpe"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_21_API_VERSION")],
        # cythonize follows .pxd and .pxi files, not the C headers: without
        # them here, an edit of _simd.h alone left the built module stale.
        depends=sorted(glob.glob("fastpe/*.h")),
    )


# Two compiled modules: _kernels, every kernel (sinusoid rows, learned
# tables, rotary, attention biases; the one module that compiles _simd.h, so
# each SIMD setting exists once), and _frontdoor, the front doors of
# add_sinusoidal and apply_rotary with the one bounded cache, which they
# read without a Python call. Each .pyx includes its parts (.pxi files).
setup(
    ext_modules=[_extension("_kernels"), _extension("_frontdoor")],
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
