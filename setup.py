"""Build hook for mpclr's one C extension (exact RNS/NTT kernels); all metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mpclr.ring._kernels",
            sources=["mpclr/ring/_kernels.c"],
            extra_compile_args=["-O3"],
        )
    ]
)
