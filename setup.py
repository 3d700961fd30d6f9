"""The optional compiled scans of toolkit/headers.py (toolkit/_native.c); everything else is in pyproject.toml.

``optional=True``: where no C compiler (or no Python headers) is found the build warns and goes on,
and toolkit/headers.py runs its pure-Python reference functions instead (docs/architecture.md,
"Compiled scans")."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("toolkit._native", ["toolkit/_native.c"], optional=True)])
