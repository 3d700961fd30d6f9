"""``migrate check``: every line of a plan tried without importing anything.

Local sources must exist (an ``smb://`` location is checked by its import); server sources are
connected to and logged in to with the plan's TLS settings, then logged out: a line that cannot be
reached, whose certificate does not verify, which refuses STARTTLS or rejects the login is listed
with the reason. Every line is tried, so that one run names every broken line.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .plan import Plan, PlanLine
from .sources import ServerOptions

KIND_CHECKS = {"maildir": "directory", "eml": "any", "share": "directory", "mbox": "file", "pst": "file", "msg": "any"}


def check_line(line: PlanLine, password: str | None, server: ServerOptions) -> str | None:
    """What is wrong with one line (None: it can run)."""
    if line.kind in ("imap", "pop3"):
        return _try_login(line, password, server)
    if line.location.startswith("smb://"):
        return None
    p = Path(line.location)
    want = KIND_CHECKS.get(line.kind, "any")
    if not p.exists():
        return f"{line.location} does not exist"
    if want == "directory" and not p.is_dir():
        return f"{line.location} is not a directory"
    if want == "file" and not p.is_file():
        return f"{line.location} is not a file"
    return None


def _try_login(line: PlanLine, password: str | None, server: ServerOptions) -> str | None:
    from importers.imap import SCHEMES as IMAP
    from importers.netutil import SourceAuthError
    from importers.pop3 import SCHEMES as POP3

    from ..net import imap as net_imap
    from ..net import pop3 as net_pop3
    from ..net.tls import tls_context
    from ..net.url import parse_mail_url

    try:
        u = parse_mail_url(line.url, IMAP if line.kind == "imap" else POP3)
        ctx = tls_context(server.ca_file, server.insecure)
        opts = dict(user=u.user, password=password or "", auth_error=SourceAuthError,
                    allow_plaintext=server.allow_plaintext, timeout=min(server.timeout, 30.0))
        if line.kind == "imap":
            net_imap.close(net_imap.connect(u.host, u.port, u.implicit_tls, ctx, **opts), logout=True)
        else:
            conn = net_pop3.connect(u.host, u.port, u.implicit_tls, ctx, **opts)
            try:
                conn.quit()
            finally:
                net_pop3.close(conn)
    except Exception as exc:  # every failure is the line's finding: unreachable, TLS, login, bad URL
        return _reason(exc)
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not str(exc).startswith("["):
        return f"cannot connect: {exc.strerror or exc}"
    text = str(exc) or type(exc).__name__
    return text if not isinstance(exc, OSError) else f"cannot connect: {text}"


def check_plan(plan: Plan, passwords: dict[int, str], server: ServerOptions, threads: int = 8) -> list[tuple[int, str]]:
    """Every problem of the plan as (line number, reason), in line order: its syntax, then each line tried."""
    problems = list(plan.problems)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        found = list(pool.map(lambda ln: (ln.number, check_line(ln, passwords.get(ln.number), server)), plan.lines))
    problems += [(n, why) for n, why in found if why is not None]
    return sorted(problems)


def own_place_problems(plan: Plan, home, config) -> list[tuple[int, str]]:
    """(line number, reason) of every local line whose source lies inside the archive's home, a medium or the
    mirror (toolkit/own_files.py: the archive's own files are never imported)."""
    from ..errors import UsageError
    from ..own_files import refuse_inside
    from ..storage.location import parse_location

    out = []
    for line in plan.lines:
        if line.kind in ("imap", "pop3"):
            continue
        try:
            refuse_inside(home, config, parse_location(line.location), line.kind)
        except UsageError as exc:
            out.append((line.number, str(exc)))
    return out
