"""The optional compiled cores: ChangeDetector's (native/changecore.c), the window
statistics' (native/windowcore.c) and the record paths' column builder (native/rowcore.c).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and each falls back to its Python/numpy implementation (logging one warning at first
use, the column builder silently)."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class _BuildExt(build_ext):
    """No fused multiply-adds: the cores must round like the numpy implementations they mirror."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]
        super().build_extensions()


setup(
    ext_modules=[Extension("driftline.detectors._changecore", ["native/changecore.c"],
                           optional=True),
                 Extension("driftline.engine._windowcore", ["native/windowcore.c"],
                           optional=True),
                 Extension("driftline.collectors._rowcore", ["native/rowcore.c"],
                           optional=True)],
    cmdclass={"build_ext": _BuildExt},
)
