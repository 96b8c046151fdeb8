"""Only here so setuptools compiles the C core (cffi API mode) when the package is installed."""
from setuptools import setup

setup(cffi_modules=["_native/build.py:ffibuilder"])
