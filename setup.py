"""Only here so setuptools compiles the C core (cffi API mode) when the package is installed.

cffi builds the core against the stable ABI (``_core.abi3.so``): the wheel is tagged ``cp311-abi3``, so
one build serves every CPython >= 3.11.  The platform tag stays ``linux_<arch>``: the core links the
host's libseccomp dynamically, which no manylinux policy allows without vendoring it."""
from setuptools import setup

setup(cffi_modules=["_native/build.py:ffibuilder"],
      options={"bdist_wheel": {"py_limited_api": "cp311"}})
