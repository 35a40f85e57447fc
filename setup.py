"""Builds ggufkit's Python module with CMake for `pip install .` (see pyproject.toml).

The module (_ggufkit) is the CMake target ggufkit_python, configured in build/pip (kept, so
a second install only rebuilds what changed) for the Python running pip, and copied into
the package. Set CMAKE_BUILD_PARALLEL_LEVEL to choose the build's parallelism.
"""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = ROOT / "build" / "pip"
        build.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CCACHE_BASEDIR=str(ROOT))
        generator = ["-G", "Ninja"] if subprocess.run(["ninja", "--version"], capture_output=True).returncode == 0 else []
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release", "-DGGUFKIT_PYTHON=ON",
                        "-DGGUFKIT_TESTS=OFF", "-DGGUFKIT_TOOLS=OFF", "-DGGUFKIT_INSTALL=OFF", "-DGGUFKIT_CUDA=OFF",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True, env=env)
        subprocess.run(["cmake", "--build", str(build), "--target", "ggufkit_python"], check=True, env=env)
        built = build / "python" / "ggufkit" / ("_ggufkit" + sysconfig.get_config_var("EXT_SUFFIX"))  # this Python's, not another's
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(built), str(target))


setup(ext_modules=[CMakeExtension("ggufkit._ggufkit")], cmdclass={"build_ext": CMakeBuild})
