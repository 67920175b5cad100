"""Builds jaxrnn's oneDNN extension, ``jaxrnn/_onednn*.so``, where it can (the rest is in pyproject.toml).

The extension (``jaxrnn/_native/onednn_rnn.cc``) puts oneDNN's recurrent primitives behind two XLA FFI
custom calls: the ``"onednn"`` path of ``jaxrnn.scan`` on x86-64 Linux. It is compiled against the headers
of ``onednn-devel-cpu-gomp`` (a build requirement there) and the XLA FFI headers in
``jaxrnn/_native/include``, and linked against ``libdnnl.so.3`` of ``onednn-cpu-gomp``. Where it cannot be
built (another platform, no C++ compiler) the install goes on without it, with a one-line notice, and jaxrnn
runs on its XLA paths.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NATIVE = Path("jaxrnn") / "_native"
NOTICE = "jaxrnn: the oneDNN CPU path is not built ({}); jaxrnn runs on its XLA paths"


def _located(distribution: str, name: str) -> Path | None:
    """Where the installed ``distribution`` put its file ``name`` (a wheel's data files land outside
    site-packages: ``<prefix>/include``, ``<prefix>/lib``), or ``None``."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f for f in files if f.as_posix().endswith(name)]
    return Path(found[0].locate()).resolve() if found else None


class OptionalBuildExt(build_ext):
    """``build_ext`` that says in one line why it built nothing, instead of failing the install."""

    def build_extension(self, ext: Extension) -> None:
        header = _located("onednn-devel-cpu-gomp", "/oneapi/dnnl/dnnl.hpp")
        library = _located("onednn-cpu-gomp", "/libdnnl.so.3")
        if header is None or library is None:
            return self._notice("oneDNN's headers or library are not installed in the build environment")
        ext.include_dirs += [str(header.parents[2]), str(NATIVE / "include")]
        ext.extra_link_args += [f"-L{library.parent}", "-l:libdnnl.so.3", "-lgomp",
                                # site-packages/jaxrnn -> <prefix>/lib, where onednn-cpu-gomp put libdnnl.so.3
                                "-Wl,-rpath,$ORIGIN/../../.."]
        try:
            super().build_extension(ext)
        except Exception as error:  # no compiler, a compiler error: the install goes on without the extension
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            self._notice(first)

    def _notice(self, why: str) -> None:
        print(NOTICE.format(why), file=sys.stderr)


def _extensions() -> list[Extension]:
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        print(NOTICE.format(f"oneDNN's wheels are for x86-64 Linux, this is {sys.platform} on "
                            f"{platform.machine()}"), file=sys.stderr)
        return []
    return [Extension("jaxrnn._onednn", [str(NATIVE / "onednn_rnn.cc")], language="c++",
                      extra_compile_args=["-O2", "-g0", "-std=c++17"])]


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
