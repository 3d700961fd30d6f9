"""The optional compiled modules; everything else is in pyproject.toml.

* ``toolkit._native``: the compiled scans of toolkit/headers.py (toolkit/_native.c).
* ``toolkit._sha256mb``: multi-buffer SHA-256 for the blob ids (toolkit/_sha256mb.c, used by toolkit/blob_ids.py).
* ``toolkit._zstdsys``: zstd frames decompressed by the system's libzstd, loaded at run time (toolkit/_zstdsys.c,
  used by the record reads of toolkit/pack.py).

``optional=True``: where no C compiler (or no Python headers) is found the build warns and goes on,
and toolkit/headers.py runs its pure-Python reference functions instead, toolkit/blob_ids.py hashlib,
toolkit/pack.py python-zstandard (docs/architecture.md, "Compiled scans", "Multi-buffer SHA-256", "The system's
libzstd for reading records")."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("toolkit._native", ["toolkit/_native.c"], optional=True),
                   Extension("toolkit._sha256mb", ["toolkit/_sha256mb.c"], depends=["toolkit/_sha256mb_lanes.h"],
                             optional=True),
                   Extension("toolkit._zstdsys", ["toolkit/_zstdsys.c"], optional=True)])
