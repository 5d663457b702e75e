"""Build script: the Cython fast layers in cvlab/ext and the configs shipped as package data."""

from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

ext_sources = sorted(Path("cvlab/ext").glob("*.pyx"))
extensions = [
    Extension(
        "cvlab.ext." + source.stem,
        [str(source)],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for source in ext_sources
]

# configs/ sits at the top of the repository; installs ship it as the package cvlab.configs.
config_packages = ["cvlab.configs"] + [
    "cvlab.configs." + ".".join(path.relative_to("configs").parts)
    for path in sorted(Path("configs").rglob("*"))
    if path.is_dir() and not path.name.startswith((".", "__"))
]
package_dir = {"cvlab.configs": "configs"}

setup(
    packages=find_packages(include=["cvlab", "cvlab.*"]) + config_packages,
    package_dir=package_dir,
    package_data={name: ["*.yaml"] for name in config_packages},
    ext_modules=cythonize(extensions, language_level=3, quiet=True),
    zip_safe=False,
)
