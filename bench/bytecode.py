"""Compile a checkout's packages to bytecode before a bench times it.

With ``PYTHONDONTWRITEBYTECODE`` set (some shells and CI images set it) a checkout without
``__pycache__`` compiles every module it imports again in every process of every run: the driver and
each worker pay ~0.1-0.2 CPU-s, which a bench would count as the import's own time. Compiling once
first makes the figures those of the code, whatever the environment says. Python still *reads*
bytecode under ``PYTHONDONTWRITEBYTECODE``; it only does not write it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGES = ("toolkit", "importers", "exporters", "verify", "media_tools")


def compile_checkout(*checkouts: Path | None) -> None:
    """Compile the project's packages of each checkout given (None entries are skipped)."""
    for checkout in checkouts:
        if checkout is None:
            continue
        present = [p for p in PACKAGES if (Path(checkout) / p).is_dir()]
        if present:
            subprocess.run([sys.executable, "-m", "compileall", "-q", *present], cwd=checkout, check=True,
                           stdout=subprocess.DEVNULL)
