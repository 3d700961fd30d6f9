"""``verify --full``'s pack workers forked at start-up, before the command line loads click and rich
(docs/cli.md, "verify --full: workers from the start").

The workers need neither (nor DuckDB): forked before those are loaded, they start on the packs ~50 ms sooner, while
this process loads the rest of the command line and opens the catalog. :func:`start` runs first in
``toolkit/cli/main.py``: when the process is the ``mailarchive`` command (the console script or ``python -m
toolkit``) and its arguments are plainly ``[global options] verify --full [options]``, it forks the workers
(:class:`verify.deep.EarlyWorkers`) for the home and worker count those name. ``verify`` takes them
(:func:`take`) when its own parsed arguments name the same; any other run shuts them down unused
(:func:`release`, from ``main``). Anything this reading does not know for sure (another option, ``--help``,
``--subset``, an SMB medium, a test hook of the environment) forks nothing: the command then starts its workers
where it always did.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

#: global options (before the command) with a value, and flags
_GLOBAL_VALUES = ("--archive", "--lock-wait", "--progress-interval", "--log-file")
_GLOBAL_FLAGS = ("--json", "--quiet", "--smb-no-encrypt")
#: verify's options that leave its pack workers as they are
_VERIFY_VALUES = ("--workers", "--json-report", "--html-report", "--findings", "--at", "--crl")
_VERIFY_FLAGS = ("--full",)
#: environment variables of test hooks the command line configures before its command runs (toolkit/cli/environment.py)
_HOOKS = ("MAILARCHIVE_FAULT", "MAILARCHIVE_FAULT_SLOW")

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
    """Fork the workers when this process is ``mailarchive [options] verify --full [options]`` (see the module
    docstring)."""
    if not _is_the_command() or any(os.environ.get(v) for v in _HOOKS):
        return
    args = verify_full_args(sys.argv[1:])
    if args is None:
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
    try:
        _started["workers"] = EarlyWorkers(home, smb_password, workers, smb_encrypt=encrypt)
    except Exception:  # (no fork possible now) the command forks its workers where it always did, and says what fails
        return
    _started["for"] = (home, workers, smb_password, encrypt)
    # Until main() puts its own handler in place (~40 ms of imports), a SIGTERM would kill this process with
    # the default action and leave the workers to fail on its closed pipes, each with a traceback. Set here,
    # after the fork, so that the workers keep the default action (the pool ends them with SIGTERM).
    signal.signal(signal.SIGTERM, ended)


def ended(signum, frame) -> None:
    """SIGTERM before the command runs: the forked workers are ended, the run stops as interrupted (exit 130),
    quietly; ``main()`` replaces this handler with its own when it starts."""
    release()
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
    """End workers forked at start-up that no command took (at once: their packs are not wanted)."""
    _started.pop("for", None)
    early = _started.pop("workers", None)
    if early is not None:
        early.abandon()
