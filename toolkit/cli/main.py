"""The ``mailarchive`` command: global options, command groups, and the one error → exit code place."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape

from ..errors import EXIT_STATUS_HELP, ExitCode, MailArchiveError
from .output import Ui, err_console


class Context:
    def __init__(self, home: Path, ui: Ui, lock_wait: float):
        self.home = home
        self.ui = ui
        self.lock_wait = lock_wait

    def open(self, writer: bool = False):
        from ..archive import Archive

        return Archive.open(self.home, writer=writer, lock_wait=self.lock_wait)


pass_ctx = click.make_pass_decorator(Context)


def command(group: click.Group, name: str | None = None, **kw):
    """A subcommand whose help ends with the exit status table."""
    kw.setdefault("epilog", EXIT_STATUS_HELP)
    return group.command(name, **kw)


def subgroup(group: click.Group, name: str, help: str) -> click.Group:
    def _group() -> None:
        pass

    _group.__doc__ = help
    return group.group(name, epilog=EXIT_STATUS_HELP)(_group)


#: Which command modules define (or add to) each top-level command. A command not listed here
#: makes every ``*_cmd`` module load, so a new module works before it is listed; listing it
#: keeps start-up short (each CLI call imports only what its command needs).
COMMAND_MODULES = {
    "init": ["init_cmd"],
    "key": ["key_cmd"],
    "media": ["media_cmd", "media_tools_cmd"],
    "import": ["import_cmd", "import_mbox_cmd", "import_maildir_cmd", "import_net_cmd"],
    "export": ["export_cmd", "export_more_cmd", "verify_cmd"],
    "stats": ["query_cmd"],
    "sql": ["query_cmd"],
    "demo": ["demo_cmd"],
    "timestamp": ["timestamp_cmd"],
    "verify": ["verify_cmd"],
    "verify-evidence": ["verify_cmd"],
    "db": ["db_cmd"],
    "mirror": ["mirror_cmd"],
    "restore": ["mirror_cmd"],
    "schedule": ["mirror_cmd"],
    "lock": ["lock_cmd"],
    "mirror-status": ["mirror_status_cmd"],
}


class LazyGroup(click.Group):
    """Imports a command's modules only when that command runs (or all of them for --help)."""

    def list_commands(self, ctx):
        _register()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        if name not in self.commands:
            import importlib

            mods = COMMAND_MODULES.get(name)
            if mods is None:
                _register()
            else:
                for m in mods:
                    importlib.import_module(f"{__package__}.{m}")
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, epilog=EXIT_STATUS_HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--archive", "home", type=click.Path(path_type=Path), default=None,
    help="The archive home (default: $MAILARCHIVE_HOME, else ./archive).",
)
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object with the result on stdout.")
@click.option("--quiet", is_flag=True, help="No progress and no summary on the terminal.")
@click.option("--lock-wait", type=float, default=0.0, show_default=True, help="Seconds to wait for another writer to finish.")
@click.option("--smb-no-encrypt", is_flag=True,
              help="Do not ask SMB servers for SMB3 encryption (for old servers only; signing stays required). "
                   "By default every smb:// connection asks for encryption; a server that offers none is used "
                   "signed only, with a warning.")
@click.version_option(package_name="mailarchive-toolkit")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool, quiet: bool, lock_wait: float, smb_no_encrypt: bool) -> None:
    """Bulk migration into and out of an encrypted, timestamped e-mail archive.

    An archive is a home directory (configuration, key, encrypted catalog) and
    numbered storage media (local directories or smb:// shares) holding
    encrypted packs of mail. Start with `mailarchive init`, or try `mailarchive demo`.
    """
    if home is None:
        home = Path(os.environ.get("MAILARCHIVE_HOME") or "archive")
    ctx.obj = Context(home, Ui(json=as_json, quiet=quiet), lock_wait)
    from ..storage import configure_smb

    configure_smb(encrypt=not smb_no_encrypt, warn=_warn_always)
    timings = os.environ.get("MAILARCHIVE_LOCK_TIMINGS")  # tests: interval,lost_after,stale_after,recheck seconds
    if timings:
        from ..shared_lock import configure

        configure(**dict(zip(("interval", "lost_after", "stale_after", "recheck"), map(float, timings.split(",")))))


def _warn_always(message: str) -> None:
    """A warning on stderr even with --quiet or --json (stdout stays the JSON result)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def _register() -> None:
    """Import every ``*_cmd`` module of this package; each adds its commands to ``cli``."""
    import importlib
    import pkgutil

    from .. import cli as package

    for m in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if m.name.endswith("_cmd"):
            importlib.import_module(f"{package.__name__}.{m.name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command and turns every MailArchiveError into its exit status."""
    try:
        rv = cli.main(args=argv, prog_name="mailarchive", standalone_mode=False)
    except MailArchiveError as exc:
        err_console.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.USAGE))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(int(rv or 0))
