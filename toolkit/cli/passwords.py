"""Secrets come from a file, an environment variable or a prompt — never from argv (docs/formats.md)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..errors import UsageError


def read_secret(password_file: Path | None, env: str, prompt: str, confirm: bool = False) -> str:
    if password_file is not None:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the password file {password_file}: {exc.strerror}") from None
        secret = text.rstrip("\r\n")
        if not secret:
            raise UsageError(f"the password file {password_file} is empty")
        return secret
    if os.environ.get(env):
        return os.environ[env]
    if not sys.stdin.isatty():
        raise UsageError(f"{prompt}: no password given; use --password-file FILE or set {env}")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
