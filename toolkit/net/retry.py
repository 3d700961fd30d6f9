"""Link failures, bounded exponential backoff and reconnect-and-repeat (docs/reliability.md D1-D3, I10)."""
from __future__ import annotations

import imaplib
import math
import random
import time
from typing import Callable, TypeVar

from toolkit.errors import SourceError

T = TypeVar("T")

#: Failures of the link (reset, timeout, EOF, TLS record errors, imaplib's "abort") that a reconnect may cure.
LINK_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, imaplib.IMAP4.abort)


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def import_gives_up(what: str, exc: BaseException, failures: int, seconds: float) -> Exception:
    return SourceError(
        f"{what}: {describe(exc)}; gave up after {failures} attempts in "
        f"{seconds:.0f} s. Check the server and the network, then rerun: the import resumes."
    )


class Retry:
    """Bounded exponential backoff: ``retries`` attempts in a row, ``deadline`` seconds in all (None: no bound).

    The pause after the n-th failure in a row is ``backoff * 2**(n-1)``, at most
    ``max_delay``, lengthened by up to ``jitter`` (a fraction) at random.
    ``reset()`` after progress, so a long run survives several separate drops
    but a link that fails on every attempt ends the run in bounded time.
    ``give_up(what, exc, failures, seconds)`` makes the error raised when the budget is spent.
    """

    def __init__(self, retries: int = 5, backoff: float = 1.0, max_delay: float = 30.0, deadline: float | None = 300.0,
                 sleep: Callable[[float], None] = time.sleep, *, jitter: float = 0.1,
                 give_up: Callable[[str, BaseException, int, float], Exception] = import_gives_up):
        self.retries, self.backoff, self.max_delay, self.deadline = retries, backoff, max_delay, deadline
        self.jitter = jitter
        self._sleep = sleep
        self._give_up = give_up
        self.failures = 0
        self.total_failures = 0
        self._first_failure: float | None = None

    def reset(self) -> None:
        self.failures = 0
        self._first_failure = None

    def wait(self, what: str, exc: BaseException) -> None:
        """Sleep before the next attempt, or raise the ``give_up`` error when the budget is spent."""
        now = time.monotonic()
        if self._first_failure is None:
            self._first_failure = now
        self.failures += 1
        self.total_failures += 1
        elapsed = now - self._first_failure
        deadline = math.inf if self.deadline is None else self.deadline
        if self.failures > self.retries or elapsed > deadline:
            raise self._give_up(what, exc, self.failures, elapsed) from None
        delay = min(self.max_delay, self.backoff * (2 ** (self.failures - 1)))
        if self.jitter:
            delay *= 1 + random.random() * self.jitter
        self._sleep(min(delay, max(0.0, deadline - elapsed)))


def with_reconnect(what: str, attempt: Callable[[], T], drop: Callable[[], None], retry: Retry,
                   reconnecting: Callable[[], None] | None = None) -> T:
    """``attempt()``; after a link failure ``drop()`` the connection, wait (or give up), ``reconnecting()``, again.

    ``attempt`` must be repeatable: after a drop nothing of its answer was used.
    """
    while True:
        try:
            return attempt()
        except LINK_ERRORS as exc:
            drop()
            retry.wait(what, exc)  # raises when the budget is spent
            if reconnecting is not None:
                reconnecting()
