"""The optional compiled core of ChangeDetector (native/changecore.c).

Everything else is in pyproject.toml. ``optional=True``: without a C compiler the install still
succeeds and the detector runs its numpy implementation (it logs one warning at first use)."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class _BuildExt(build_ext):
    """No fused multiply-adds: the core must round like the numpy implementation it mirrors."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]
        super().build_extensions()


setup(
    ext_modules=[Extension("driftline.detectors._changecore", ["native/changecore.c"],
                           optional=True),
                 # the record paths' column builder; without it the columns are built in Python
                 Extension("driftline.collectors._rowcore", ["native/rowcore.c"],
                           optional=True)],
    cmdclass={"build_ext": _BuildExt},
)
