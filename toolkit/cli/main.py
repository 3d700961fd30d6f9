"""The ``mailarchive`` command: global options, command groups, and the one error → exit code place."""
from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

from . import early

early.start()  # `verify --full`, `import eml|mbox|maildir`: workers start before click and rich load (toolkit/cli/early.py)

import click  # noqa: E402
from rich.markup import escape

from ..errors import EXIT_STATUS_HELP, ExitCode, MailArchiveError
from .environment import configure_test_hooks
from .early import workers_skip_the_main_script  # noqa: F401  (main() calls it; tests import it from here)
from .hints import with_hint
from .output import Ui, err_console


class Context:
    def __init__(self, home: Path, ui: Ui, lock_wait: float):
        self.home = home
        self.ui = ui
        self.lock_wait = lock_wait
        self.dry_run = False  # set by an import command's --dry-run
        self.executor = None  # set by --executor (toolkit/cli/executor_option.py); None: local processes
        self._notes: set[str] = set()  # the notes on the home's place said so far (``open``)

    def open(self, writer: bool = False, repointing: bool = False):
        """The archive; ``repointing``: the command points media or the mirror elsewhere, and may open a copy
        of a home that still shares them (toolkit/home_place.py). What the open noticed about the home's
        place (moved, a copy) is said on stderr."""
        from ..archive import Archive

        archive = Archive.open(self.home, writer=writer, lock_wait=self.lock_wait,
                               smb_password=os.environ.get("MAILARCHIVE_SMB_PASSWORD"), repointing=repointing)
        if archive.home_note and archive.home_note not in self._notes:  # once per run, however often it opens
            self._notes.add(archive.home_note)
            self.ui.say(f"note: {escape(archive.home_note)}")
        return archive


pass_ctx = click.make_pass_decorator(Context)


def command(group: click.Group, name: str | None = None, **kw):
    """A subcommand whose help ends with the exit status table."""
    kw.setdefault("epilog", EXIT_STATUS_HELP)
    return group.command(name, **kw)


def subgroup(group: click.Group, name: str, help: str) -> click.Group:
    def _group() -> None:
        pass

    _group.__doc__ = help
    cls = LazySubgroup if group is cli and name in SUBCOMMAND_MODULES else click.Group
    return group.group(name, cls=cls, epilog=EXIT_STATUS_HELP)(_group)


#: Which modules of ``toolkit.cli.commands`` define (or add to) each top-level command (the naming
#: scheme is in this package's docstring). A command not listed here makes every command module
#: load, so a new module works before it is listed; listing it keeps start-up short (each CLI call
#: imports only what its command needs). tests/unit/test_cli_layer.py checks this table.
COMMAND_MODULES = {
    "init": ["init"],
    "key": ["key"],
    "media": ["media", "media_consolidate", "media_gc"],
    "import": ["import_eml", "import_mbox", "import_maildir", "import_share", "import_imap_pop3", "import_outlook",
               "config"],
    "config": ["config"],
    "export": ["export_eml", "export_formats", "export_evidence"],
    "stats": ["stats"],
    "sql": ["sql"],
    "demo": ["demo"],
    "timestamp": ["timestamp"],
    "verify": ["verify"],
    "verify-evidence": ["verify"],
    "db": ["db"],
    "mirror": ["mirror"],
    "restore": ["mirror"],
    "schedule": ["mirror"],
    "lock": ["lock"],
    "mirror-status": ["mirror_status"],
    "directory": ["directory"],
    "migrate": ["migrate"],
    "retention": ["retention"],
    "delete": ["delete"],
    "purge": ["purge"],
}


#: The groups whose subcommands load one by one: the module that makes the group (loaded for the group),
#: then which modules define each subcommand. ``import mbox`` then imports neither the eml, share and
#: Outlook importers nor their command modules (bench/RESULTS.md "Commit cost"); a subcommand not listed
#: loads every module of COMMAND_MODULES[group]. tests/unit/test_cli_layer.py checks this table.
SUBCOMMAND_MODULES: dict[str, tuple[str, dict[str, list[str]]]] = {
    "import": ("import_eml", {
        "eml": ["import_eml"], "mbox": ["import_mbox"], "maildir": ["import_maildir"], "share": ["import_share"],
        "imap": ["import_imap_pop3"], "pop3": ["import_imap_pop3"], "msg": ["import_outlook"],
        "pst": ["import_outlook"], "source": ["config"],
    }),
}


def _load_command_modules(names: list[str]) -> None:
    import importlib

    for m in names:
        importlib.import_module(f"{__package__}.commands.{m}")


class LazySubgroup(click.Group):
    """A group of :data:`SUBCOMMAND_MODULES`: imports a subcommand's modules only when it runs (all for --help)."""

    def list_commands(self, ctx):
        _load_command_modules(COMMAND_MODULES[self.name])
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        if name not in self.commands:
            _load_command_modules(SUBCOMMAND_MODULES[self.name][1].get(name) or COMMAND_MODULES[self.name])
        return super().get_command(ctx, name)


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
            elif name in SUBCOMMAND_MODULES:
                importlib.import_module(f"{__package__}.commands.{SUBCOMMAND_MODULES[name][0]}")
            else:
                for m in mods:
                    importlib.import_module(f"{__package__}.commands.{m}")
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
@click.option("--progress-interval", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="When stderr is not a terminal: seconds between plain progress lines.")
@click.option("--log-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Append a timestamped line per event of this run (start, skips, errors, summaries, end) to FILE (default: the log_file setting).")
@click.version_option(package_name="mailarchive-toolkit")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool, quiet: bool, lock_wait: float, smb_no_encrypt: bool,
        progress_interval: float, log_file: Path | None) -> None:
    """Bulk migration into and out of an encrypted, timestamped e-mail archive.

    An archive is a home directory (configuration, key, encrypted catalog) and
    numbered storage media (local directories or smb:// shares) holding
    encrypted packs of mail. Start with `mailarchive init`, or try `mailarchive demo`.
    """
    if home is None:
        home = Path(os.environ.get("MAILARCHIVE_HOME") or "archive")
    ctx.obj = Context(home, Ui(json=as_json, quiet=quiet, progress_interval=progress_interval), lock_wait)
    _RUN["ui"] = ctx.obj.ui  # an error after this point is a JSON object too with --json (``_exit``)
    configure_test_hooks()
    ctx.obj.ui.log = _open_log(log_file, home, ctx)
    from ..storage import configure_smb

    configure_smb(encrypt=not smb_no_encrypt, warn=_warn_always)
    from .. import notices

    notices.configure(warn=_warn_always)  # e.g. a writer's last checkpoint that could not be done (A12)
    timings = os.environ.get("MAILARCHIVE_LOCK_TIMINGS")  # tests: interval,lost_after,stale_after,recheck seconds
    if timings:
        from ..shared_lock import configure

        configure(**dict(zip(("interval", "lost_after", "stale_after", "recheck"), map(float, timings.split(",")))))


def _warn_always(message: str) -> None:
    """A warning on stderr even with --quiet or --json (stdout stays the JSON result)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def _open_log(log_file: Path | None, home: Path, ctx: click.Context):
    """The run log of --log-file, else of the archive's log_file setting; logs the start of the run."""
    if log_file is None:
        from .runlog import log_file_setting

        value = log_file_setting(home)
        log_file = Path(value) if value else None
    if log_file is None or ctx.resilient_parsing or "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        return None
    from .runlog import RunLog

    try:
        log = RunLog(log_file)
    except OSError as exc:
        raise click.UsageError(f"cannot open the log file {log_file}: {exc.strerror or exc}") from None
    args = sys.argv[1:] if _RUN.get("argv") is None else _RUN["argv"]
    log.event("start", command=" ".join(args), archive=str(Path(home).absolute()))
    _RUN["log"] = log
    return log


#: The run log of this process, so that ``main`` can log the exit status.
_RUN: dict = {}


def _register() -> None:
    """Import every module of ``toolkit.cli.commands``; each adds its commands to ``cli``."""
    import importlib
    import pkgutil

    from . import commands

    for m in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{m.name}")


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a command as Ctrl-C does: cleanup runs, exit 130


def _report_write_failure(exc: OSError) -> None:
    """A write that failed outside the archive's own storage code, such as the output or log on a
    full volume (docs/reliability.md E7): reported on stderr, exit 3, never a traceback."""
    where = exc.filename or "the output (stdout)"
    try:
        sys.stdout = open(os.devnull, "w")  # nothing more can be written there; keep exit quiet
        err_console.print(f"[red]error:[/] cannot write {where}: {exc.strerror}; "
                          "what was committed stays consistent: free space and rerun (a rerun resumes)",
                          markup=True, highlight=False)
    finally:
        sys.exit(int(ExitCode.OPERATIONAL))


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command and turns every MailArchiveError into its exit status."""
    _RUN["argv"] = argv
    _RUN.pop("ui", None)
    workers_skip_the_main_script()
    from ..process_guard import cap_malloc_arenas, forbid_core_dumps

    forbid_core_dumps()  # the key and passphrases never reach a core file (docs/reliability.md G7)
    cap_malloc_arenas()  # a long run's memory stays bounded (docs/reliability.md K8)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, early.ended):  # early's: until now
        signal.signal(signal.SIGTERM, _terminated)
    if signal.getsignal(signal.SIGINT) is early.ended:  # an early import pool's: Ctrl-C is KeyboardInterrupt again
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            rv = cli.main(args=argv, prog_name="mailarchive", standalone_mode=False)
        finally:
            early.release()  # workers forked at start-up that the command did not take
        sys.stdout.flush()  # a full disk under a redirected stdout shows here, not at interpreter exit
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise
        _report_write_failure(exc)
    except MailArchiveError as exc:
        message = with_hint(exc)
        err_console.print(f"[red]error:[/] {message}", markup=True, highlight=False)
        _exit(int(exc.exit_code), message)
    except click.exceptions.Abort:
        err_console.print("aborted")
        _exit(int(ExitCode.INTERRUPTED), "aborted")
    except click.ClickException as exc:
        _global_option_hint(exc)
        exc.show()
        _exit(int(ExitCode.USAGE), exc.format_message())
    except KeyboardInterrupt:
        err_console.print("interrupted")
        _exit(int(ExitCode.INTERRUPTED), "interrupted")
    except Exception as exc:
        if not _caused_by_interrupt(exc):
            raise
        # a second Ctrl-C/SIGTERM inside a DuckDB query comes back as "Query interrupted"
        # (docs/reliability.md A3): the transaction is rolled back, a rerun resumes
        err_console.print("interrupted")
        _exit(int(ExitCode.INTERRUPTED), "interrupted")
    _exit(int(rv or 0))


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Is a KeyboardInterrupt among the causes of ``exc`` (as DuckDB chains it to its own error), or is ``exc``
    DuckDB's own word for one it met inside a query without chaining it (:func:`_duckdb_interrupt`)?"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt) or _duckdb_interrupt(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _duckdb_interrupt(exc: BaseException) -> bool:
    """DuckDB's errors for a Ctrl-C/SIGTERM (a KeyboardInterrupt) that came while it ran a query and that it does not
    chain: ``KeyboardInterrupt: <EMPTY MESSAGE>`` (met while it scanned Arrow rows handed over from Python: a
    fresh-clone run's second signal inside an import's commit printed it as a traceback), ``Query interrupted``
    (a RuntimeError), or a Python exception's detail ending in ``KeyboardInterrupt`` (an Arrow reader's). Only
    DuckDB's own exception types and that RuntimeError are read (tests/unit/test_cli_interrupt.py)."""
    duckdb_own = type(exc).__module__.lstrip("_").startswith("duckdb")
    if not duckdb_own and type(exc) is not RuntimeError:
        return False
    text = str(exc).strip()
    if not duckdb_own:
        return text == "Query interrupted"
    return text.startswith("KeyboardInterrupt") or text == "Query interrupted" or text.endswith("\nKeyboardInterrupt")


_GLOBAL_METAVARS = {"--archive": " HOME", "--lock-wait": " SECONDS", "--progress-interval": " SECONDS",
                    "--log-file": " FILE"}


def _global_option_hint(exc: click.ClickException) -> None:
    """An option of mailarchive itself (``--json``, ``--archive``, ...) given after the command: say where it goes,
    instead of click's "No such option" (and its guess, ``--json-report`` for ``--json``)."""
    name = getattr(exc, "option_name", None)
    if isinstance(exc, click.NoSuchOption) and name in early.GLOBAL_OPTIONS:
        command = exc.ctx.command_path if exc.ctx is not None else "mailarchive COMMAND"
        exc.message = (f"{name} is an option of mailarchive itself, not of this command: put it before the command, "
                       f"as in `mailarchive {name}{_GLOBAL_METAVARS.get(name, '')} "
                       f"{command.partition(' ')[2] or 'COMMAND'} ...`")
        exc.possibilities = []


def _exit(code: int, error: str | None = None) -> None:
    ui = _RUN.pop("ui", None)
    if error is not None and ui is not None:
        try:
            ui.emit_error(code, error)
        except OSError:  # stdout gone (a closed pipe): the exit status and stderr still say it
            pass
    log = _RUN.pop("log", None)
    if log is not None:
        if error:
            log.event("error", reason=error)
        log.end(code)
    if _RUN.get("argv") is None:  # the process's own command line, not a call from Python
        _leave(code)
    sys.exit(code)


def _leave(code: int) -> None:
    """End the process once the command is done, without the interpreter's teardown of every module and
    object (0.03–0.15 s of a short command, bench/RESULTS.md "Consolidation, fixed cost of a run").
    Everything the command writes is on disk before it returns (files fsynced and closed, the catalog
    committed and detached); the exit hooks still run and stdout and stderr are flushed. Returns (the
    normal exit follows) while a thread the interpreter would wait for is alive, or when the output
    cannot be flushed."""
    import atexit
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()  # what the interpreter runs first at exit (and then forgets)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # the normal exit reports it
    os._exit(code)
