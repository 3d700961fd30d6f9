"""Worker processes started at start-up, before the command line loads click and rich: ``verify --full``'s pack
workers (forked), and an import's (spawned) (docs/cli.md, "verify --full: workers from the start" and "import:
workers from the start").

The workers need neither (nor DuckDB): forked before those are loaded, they start on the packs ~50 ms sooner, while
this process loads the rest of the command line and opens the catalog. :func:`start` runs first in
``toolkit/cli/main.py``: when the process is the ``mailarchive`` command (the console script or ``python -m
toolkit``) and its arguments are plainly ``[global options] verify --full [options]``, it forks the workers
(:class:`verify.deep.EarlyWorkers`) for the home and worker count those name. ``verify`` takes them
(:func:`take`) when its own parsed arguments name the same; any other run shuts them down unused
(:func:`release`, from ``main``). Anything this reading does not know for sure (another option, ``--help``,
``--subset``, an SMB medium, a test hook of the environment) forks nothing: the command then starts its workers
where it always did.

An import works the same way (:func:`import_args`): ``[global options] import eml|mbox|maildir [options] SOURCE...``
of local sources that hold more than an import's first chunk (which the driver prepares itself, so a smaller
source starts no pool at all), into a home that has a config, spawns the import's pool
(:class:`toolkit.executors.StartedPool`, the same workers ``Ingest`` would spawn after opening the archive); the
command's ``run_imports`` takes them (:func:`take_import`) when its parsed arguments name the same command and
sources and a local executor, and its ``Ingest`` uses them when it would start the same pool (worker count, test
fault points). Not for ``--dry-run``, ``--executor`` other than ``local``, ``MAILARCHIVE_WORKERS=0`` or a test hook.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

#: global options (before the command) with a value, and flags
GLOBAL_VALUES = _GLOBAL_VALUES = ("--archive", "--lock-wait", "--progress-interval", "--log-file")
_GLOBAL_FLAGS = ("--json", "--quiet", "--smb-no-encrypt")
#: the options of mailarchive itself (before the command), as the command line names them in a hint
GLOBAL_OPTIONS = _GLOBAL_VALUES + _GLOBAL_FLAGS
#: verify's options that leave its pack workers as they are
_VERIFY_VALUES = ("--workers", "--json-report", "--html-report", "--findings", "--at", "--crl")
_VERIFY_FLAGS = ("--full",)
#: environment variables of test hooks the command line configures before its command runs (toolkit/cli/environment.py)
_HOOKS = ("MAILARCHIVE_FAULT", "MAILARCHIVE_FAULT_SLOW")
#: per import command: its options with a value and its flags that leave the pool as it is (``--executor``: local only)
_IMPORT_OPTIONS = {
    "eml": (("--executor", "--password-file"), ("--force-raw",)),
    "mbox": (("--executor", "--password-file", "--variant", "--max-message-size", "--max-expansion-ratio",
              "--max-expansion-after"), ()),
    "maildir": (("--executor", "--password-file"), ()),
}
#: an import's first chunk, prepared by the driver: at most this many mails and bytes (toolkit/ingest.py FIRST_CHUNK,
#: FIRST_CHUNK_BYTES; tests/unit/test_cli_early.py checks they agree). A source holding more starts the pool.
FIRST_CHUNK, FIRST_CHUNK_BYTES = 256, 8 * 1024 * 1024
#: the home's config file (toolkit/home.py CONFIG_NAME): without it the command fails before any import
_CONFIG_NAME = "archive.toml"

_started: dict = {}


def _options(args: list[str], values: tuple, flags: tuple) -> tuple[dict, list[str]] | None:
    """The leading options of ``args`` ({name: value or True}) and what follows them; None at anything else."""
    got: dict = {}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name, eq, value = args[i].partition("=")
        if name in flags and not eq:
            got[name] = True
        elif name in values and eq:
            got[name] = value
        elif name in values and i + 1 < len(args):
            i += 1
            got[name] = args[i]
        else:
            return None
        i += 1
    return got, args[i:]


def verify_full_args(argv: list[str]) -> tuple[Path, int | None, bool] | None:
    """(home, --workers, SMB encryption) when ``argv`` (without the program) is ``[global options] verify --full
    [verify options]`` with nothing else, else None."""
    front = _options(argv, _GLOBAL_VALUES, _GLOBAL_FLAGS)
    if front is None or front[1][:1] != ["verify"]:
        return None
    back = _options(front[1][1:], _VERIFY_VALUES, _VERIFY_FLAGS)
    if back is None or back[1] or "--full" not in back[0]:
        return None
    workers = back[0].get("--workers")
    if workers is not None:
        if not workers.isascii() or not workers.isdigit() or int(workers) < 1:
            return None
        workers = int(workers)
    home = front[0].get("--archive") or os.environ.get("MAILARCHIVE_HOME") or "archive"
    return Path(home), workers, "--smb-no-encrypt" not in front[0]


def import_args(argv: list[str], environ=os.environ) -> tuple[Path, str, tuple[str, ...], int] | None:
    """(home, command, sources, workers) when ``argv`` (without the program) is ``[global options] import
    eml|mbox|maildir [options] SOURCE...`` with options this reading knows, local sources and a local executor,
    else None. ``workers``: what the import would start (``MAILARCHIVE_WORKERS``, else one per CPU); None for 0."""
    front = _options(argv, _GLOBAL_VALUES, _GLOBAL_FLAGS)
    if front is None or front[1][:1] != ["import"] or len(front[1]) < 2 or front[1][1] not in _IMPORT_OPTIONS:
        return None
    kind, rest = front[1][1], front[1][2:]
    values, flags = _IMPORT_OPTIONS[kind]
    sources: list[str] = []
    i = 0
    while i < len(rest):  # click takes the options before, between and after the sources
        arg = rest[i]
        i += 1
        if not arg.startswith("-"):
            sources.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in flags and not eq:
            continue
        if name not in values or (not eq and i >= len(rest)):
            return None
        if not eq:
            value, i = rest[i], i + 1
        if name == "--executor" and value != "local":
            return None
    if not sources or any("://" in s for s in sources):
        return None
    text = environ.get("MAILARCHIVE_WORKERS")
    if text:
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            return None
        workers = int(text)
    else:
        workers = os.cpu_count() or 1
    home = front[0].get("--archive") or environ.get("MAILARCHIVE_HOME") or "archive"
    return Path(home), kind, tuple(sources), workers


def more_than_first_chunk(sources: tuple[str, ...]) -> bool:
    """Do the local ``sources`` hold more files than the import's first chunk has mails, or more bytes than it
    may hold? Looks at no more than that many files (a source's later files are never listed here)."""
    files = size = 0
    todo = [Path(s) for s in sources]
    while todo:
        path = todo.pop()
        try:
            if path.is_dir():
                with os.scandir(path) as entries:
                    for e in entries:
                        if e.is_dir(follow_symlinks=False):
                            todo.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False):
                            files += 1
                            size += e.stat(follow_symlinks=False).st_size
                        if files > FIRST_CHUNK or size > FIRST_CHUNK_BYTES:
                            return True
            elif path.is_file():
                files += 1
                size += path.stat().st_size
        except OSError:  # the command reports it
            return False
        if files > FIRST_CHUNK or size > FIRST_CHUNK_BYTES:
            return True
    return False


def _is_the_command() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return (spec is not None and spec.name == "toolkit.__main__") or (
        spec is None and Path(sys.argv[0]).name == "mailarchive")


def _local_only(home: Path) -> bool:
    """The archive's config names media, none of them on a share (a share's settings are made later)."""
    from toolkit.home import Home

    try:
        media = Home(home).load_config().media
    except Exception:  # the command reports an unreadable home as always
        return False
    return bool(media) and not any(str(m.location).startswith("smb://") for m in media)


def start() -> None:
    """Fork the workers when this process is ``mailarchive [options] verify --full [options]``, spawn them for
    ``mailarchive [options] import eml|mbox|maildir [options] SOURCE...`` (see the module docstring)."""
    if _started.get("ran") or not _is_the_command() or any(os.environ.get(v) for v in _HOOKS):
        return
    _started["ran"] = True  # once per process (a caller may have run it before the module that runs it is loaded)
    args = verify_full_args(sys.argv[1:])
    if args is None:
        _start_import(import_args(sys.argv[1:]))
        return
    import multiprocessing

    # a spawned child or a fork server of this command imports its main module again, with its arguments
    if multiprocessing.parent_process() is not None or not _local_only(args[0]):
        return
    from toolkit.process_guard import cap_malloc_arenas, forbid_core_dumps
    from verify.deep import EarlyWorkers

    forbid_core_dumps()   # as main() does first: the workers are forked now
    cap_malloc_arenas()   # before the pool's thread starts
    home, workers, encrypt = args
    smb_password = os.environ.get("MAILARCHIVE_SMB_PASSWORD")

    def fork() -> bool:
        try:
            _started["workers"] = EarlyWorkers(home, smb_password, workers, smb_encrypt=encrypt)
        except Exception:  # (no fork possible now) the command forks its workers where it always did, and says what fails
            return False
        _started["for"] = (home, workers, smb_password, encrypt)
        return True

    # The workers inherit the held signals and release them first thing, after taking the default action back
    # (verify.deep._init_worker); ``ended`` is set after the fork, so that they keep the default actions (the pool
    # ends them with SIGTERM).
    _start_with_signals_held(fork)


def _start_with_signals_held(start) -> None:
    """``start()`` (True once it started the workers and recorded them in ``_started``) with SIGINT and SIGTERM held,
    then both handed to :func:`ended` until main() puts its own handlers in place (~40 ms of imports): a SIGTERM or
    Ctrl-C then ends the workers and the run quietly (interrupted). One that came while the workers start, before
    ``ended`` was in place, killed the process at once (SIGTERM) or was a KeyboardInterrupt traceback (Ctrl-C), and
    left the workers running (verify's forked ones holding the process's output open); held, it comes to ``ended``
    when released."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        if start():
            signal.signal(signal.SIGTERM, ended)
            signal.signal(signal.SIGINT, ended)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _start_import(args) -> None:
    """Spawn an import's pool for ``args`` (:func:`import_args`) when its sources hold more than a first chunk."""
    if args is None:
        return
    import multiprocessing

    home, kind, sources, workers = args
    if (multiprocessing.parent_process() is not None or not (home / _CONFIG_NAME).is_file()
            or not more_than_first_chunk(sources)):
        return
    from toolkit import faults
    from toolkit.executors import StartedPool
    from toolkit.process_guard import cap_malloc_arenas, forbid_core_dumps, steady_large_buffers

    forbid_core_dumps()   # as main() does first
    cap_malloc_arenas()   # before the pool's thread starts
    steady_large_buffers()  # as the import command does (its first chunk is scanned here already)
    workers_skip_the_main_script()  # the workers are spawned now, before main() would say so
    from multiprocessing import resource_tracker

    try:
        resource_tracker.ensure_running()  # first: multiprocessing's resource tracker unblocks both once started
    except Exception:  # (no process can start now) the import starts its workers where it always did
        return

    def spawn() -> bool:
        try:
            pool = StartedPool(workers, dict(faults.ACTIVE))
        except Exception:  # (no process can start now) the import starts its workers where it always did
            return False
        _started["import"] = pool
        _started["import_for"] = (kind, sources)
        return True

    _start_with_signals_held(spawn)
    pool = _started.get("import")
    if pool is not None:  # (signals not held: a Ctrl-C during a long walk ends the run at once, as it would later)
        _start_ahead(pool, kind, sources)


def _start_ahead(pool, kind: str, sources: tuple[str, ...]) -> None:
    """``import eml`` (without ``--force-raw``), ``import maildir`` or ``import mbox`` (without a size limit given) of
    one local source: its first chunk goes to a worker now, as a task started ahead (toolkit/early_tasks.py), read by
    the same importer the command makes; the run takes it up when its own first chunk is the same, else it keeps
    nothing. Anything that fails here leaves the run as it was."""
    if kind not in ("eml", "maildir", "mbox") or len(sources) != 1 or "--force-raw" in sys.argv:
        return
    variant = _mbox_variant(sys.argv[1:]) if kind == "mbox" else None
    if kind == "mbox" and variant is None:
        return
    try:
        from importers.walk import keep_walk, walk_local
        from toolkit import early_tasks
        from toolkit.pack import PACK_TARGET_SIZE
        from toolkit.reporter import NullReporter

        from .tuning import ingest_tuning, parse_limit

        root = entries = None
        if kind == "mbox":  # (its scan reads the file in the items' order: there is no walk to keep)
            from importers.mbox import MboxImporter

            importer = MboxImporter(sources[0], variant=variant)
        else:
            if kind == "eml":
                from importers.eml import EmlImporter as Importer
            else:
                from importers.maildir import MaildirImporter as Importer
            importer = Importer(sources[0])
            root = os.fsencode(importer.location.path)
            entries = walk_local(root)  # signals not held: a Ctrl-C during a long walk ends the run at once (``ended``)
            keep_walk(root, entries, again=True)  # walked once: the scan below takes it, and the run's scan after it
        items = importer.scan(None, NullReporter())
        # held while the first chunk's items are made and its task submitted: ``ended`` shutting the pool down in
        # the middle of the pool's own submit would wait for the lock that submit holds
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            early_tasks.start(pool.executor, items, parse_limit(), ingest_tuning()["pack_target"] or PACK_TARGET_SIZE,
                              pool.ahead)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            items.close()
            if root is not None:
                keep_walk(root, entries)
    except Exception:  # the run reads the source as always (and reports what is wrong with it)
        return


def _mbox_variant(argv: list[str]) -> str | None:
    """The ``--variant`` of an ``import mbox`` command line (``auto`` when it names none); None when it names one of
    the size limits (the command's own parsing of those is not repeated here: no task goes ahead then)."""
    variant = "auto"
    for i, arg in enumerate(argv):
        if arg.split("=", 1)[0] in ("--max-message-size", "--max-expansion-ratio", "--max-expansion-after"):
            return None
        if arg == "--variant" and i + 1 < len(argv):
            variant = argv[i + 1]
        elif arg.startswith("--variant="):
            variant = arg.partition("=")[2]
    return variant


def take_import(kind: str, sources: tuple[str, ...], distributed: bool):
    """The import's workers spawned at start-up (:class:`toolkit.executors.StartedPool`) when they were spawned for
    this command and these sources and the pack tasks run locally; the caller then hands them to its runs and
    abandons them if none takes them. Otherwise None, and workers spawned for other arguments are ended."""
    if not distributed and _started.get("import_for") == (kind, tuple(sources)):
        _started.pop("import_for")
        return _started.pop("import")
    release()
    return None


def workers_skip_the_main_script() -> None:
    """Worker processes are spawned, and a spawned process runs the parent's main script again unless its
    module names a package's ``__main__``: started as the ``mailarchive`` console script, every worker imported
    the whole CLI (click, rich: some 60 modules, ~30 CPU-ms and their memory) for nothing. ``python -m toolkit``
    has that name already; the console script's module gets it here (its ``__spec__`` is None)."""
    import importlib.machinery

    script = sys.modules.get("__main__")
    if script is not None and getattr(script, "__spec__", None) is None:
        script.__spec__ = importlib.machinery.ModuleSpec("toolkit.__main__", None)


def ended(signum, frame) -> None:
    """SIGTERM or SIGINT before the command runs: the workers started early are ended,
    the run stops as interrupted (exit 130), quietly; ``main()`` replaces this handler with its own when it starts."""
    release()
    if "multiprocessing" in sys.modules:  # its exit hook: the spawned pool's semaphores are released (no warning)
        import atexit

        atexit._run_exitfuncs()
    os.write(2, b"interrupted\n")
    os._exit(130)


def take(home: Path, workers: int | None, smb_password: str | None, smb_encrypt: bool):
    """The workers forked at start-up when they were forked for these arguments (they are then the caller's to shut
    down), else None; workers forked for other arguments are shut down."""
    if _started.get("for") == (home, workers, smb_password, smb_encrypt):
        _started.pop("for")
        return _started.pop("workers")
    release()
    return None


def release() -> None:
    """End workers started at start-up that no command took (at once: their packs are not wanted)."""
    _started.pop("for", None)
    _started.pop("import_for", None)
    for name in ("workers", "import"):
        early = _started.pop(name, None)
        if early is not None:
            early.abandon()
