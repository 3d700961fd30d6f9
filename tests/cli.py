"""Running the real `mailarchive` command in a subprocess, as users and scripts do."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PASSWORD = "correct horse battery staple"


#: The key-backup KDF profile ``mailarchive()`` gives every ``init`` (tests/README.md, "Test time"):
#: the cheap ``test`` profile, so that the hundreds of throwaway archives do not each spend two
#: strong Argon2id derivations. A test of the default passes ``kdf_profile=None``.
TEST_KDF_PROFILE = "test"


def mailarchive(home: Path, *args: str, env: dict | None = None, input: str | None = None, check: int | None = 0, json_out: bool = False, timeout: float = 300,
                kdf_profile: str | None = TEST_KDF_PROFILE):
    if args and args[0] == "init" and kdf_profile is not None and not any(a.startswith("--kdf-profile") for a in args):
        args = ("init", "--kdf-profile", kdf_profile, *args[1:])
    full_env = {**os.environ, "MAILARCHIVE_PASSWORD": PASSWORD, **(env or {})}
    cmd = [sys.executable, "-m", "toolkit", "--archive", str(home)]
    if json_out:
        cmd.append("--json")
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, input=input, timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(
            f"mailarchive {' '.join(args)} exited {p.returncode}, expected {check}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        )
    if json_out and p.returncode in (0, 1, 130) and p.stdout.strip():
        p.result = json.loads(p.stdout)
    return p
