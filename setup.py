"""Build script: the optional Cython fast layers in cvlab/ext and the configs as package data.

The extension is built from its .pyx sources (the sdist ships them, never generated C). When it
cannot be built (no C compiler, no Python headers, no Cython), the install still succeeds: cvlab
then uses its pure-numpy fallback (cvlab.layers.fast_numpy), and the build prints one warning.
"""

import os
import re
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

FALLBACK_WARNING = (
    "WARNING: cvlab's compiled fast layers (cvlab.ext) were not built: {reason}. cvlab is "
    "installed and works with its pure-numpy fallback (same results; the fast conv/pool layers "
    "run slower). To build them, install a C compiler and the Python headers (Debian/Ubuntu: "
    "apt install gcc python3-dev) and reinstall."
)
# distutils' message for a failing compiler: "Command '['cc', <50 arguments>]' returned ..."
FAILED_COMMAND = re.compile(r"Command '?\['([^']+)'.*returned non-zero exit status (\d+)")

extensions = [
    Extension(
        "cvlab.ext." + source.stem,
        [source.as_posix()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # CVLAB_EXT_OPT=-O0 compiles in a third of the time (for tests of the build itself)
        extra_compile_args=[os.environ.get("CVLAB_EXT_OPT", "-O3")],
    )
    for source in sorted(Path("cvlab/ext").glob("*.pyx"))
]


class OptionalBuildExt(build_ext):
    """build_ext that cythonizes the .pyx sources at build time and turns any failure to build
    the extension into one warning: the package is complete without it."""

    def run(self) -> None:
        try:
            import numpy
            from Cython.Build import cythonize
            from Cython.Compiler.Errors import CompileError as CythonError
        except ImportError as error:
            self._warn(f"{error.name or error} is not installed")
            return
        for ext in self.extensions:
            ext.include_dirs.append(numpy.get_include())
        inplace = self.inplace  # setuptools clears it while it builds into build_lib
        try:
            generated = cythonize(
                list(self.extensions), language_level=3, quiet=True, force=self.force
            )
            c_sources = {ext.name: ext.sources for ext in generated}
            for ext in self.extensions:  # keep the objects: setuptools set them up
                ext.sources = c_sources[ext.name]
            super().run()
        except (CCompilerError, BaseError, CythonError, OSError) as error:
            # no or a failing C compiler, missing Python headers, a Cython error
            message = str(error)
            failed = FAILED_COMMAND.search(message)
            if failed:  # the compiler's own messages, if any, are printed above
                message = f"{failed[1]} exited with status {failed[2]}"
            self._warn(f"{type(error).__name__}: {message}")
            self._remove_outputs(inplace)

    def _remove_outputs(self, inplace: bool) -> None:
        """Leave no half-built or stale extension behind (one module new, the other old or
        missing): after a failed build the package uses the numpy fallback, as the warning says."""
        for in_source_tree in [False, True] if inplace else [False]:
            self.inplace = in_source_tree  # get_ext_fullpath: build_lib or the source tree
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
        self.inplace = inplace

    def _warn(self, reason: str) -> None:
        reason = reason.strip().rstrip(".") or "unknown error"
        print(FALLBACK_WARNING.format(reason=reason), file=sys.stderr, flush=True)


# configs/ sits at the top of the repository; installs ship it as the package cvlab.configs.
config_packages = ["cvlab.configs"] + [
    "cvlab.configs." + ".".join(path.relative_to("configs").parts)
    for path in sorted(Path("configs").rglob("*"))
    if path.is_dir() and not path.name.startswith((".", "__"))
]

setup(
    packages=[*find_packages(include=["cvlab", "cvlab.*"]), "hydra_plugins.cvlab_plan_sweeper",
              *config_packages],
    package_dir={"cvlab.configs": "configs"},
    package_data={**{name: ["*.yaml"] for name in config_packages},
                  "cvlab.reproduce": ["*.yaml", "*.j2"]},  # the catalog, the report template
    ext_modules=extensions,
    include_package_data=False,  # wheels hold the modules, the configs and the built extension
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
