"""The per-mail watchdog sets its timer once for a run of mails (toolkit/prepare.py ``Watchdog``): an alarm
set for an earlier mail is moved to the mail armed when it comes, one due too late is set earlier, an alarm
with no mail armed raises nothing, and a watchdog nested in an armed one leaves the outer mail timed.
Every busy loop here is bounded (30 s): a watchdog that never fires fails the test instead of hanging it."""
from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import pytest

from toolkit.prepare import ParseTimeout, Watchdog, watchdog

BOUND = 30.0


def busy(seconds: float = BOUND) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(100))


def test_many_mails_within_their_limit_then_a_hung_one_is_stopped():
    with Watchdog.install() as dog:
        for _ in range(2000):
            dog.arm(20.0)
            assert dog.disarm() is False
        t = time.monotonic()
        with pytest.raises(ParseTimeout):
            with dog.armed(0.05):
                busy()
        assert time.monotonic() - t < BOUND  # stopped by the alarm, not by the loop's bound


def test_an_alarm_set_for_a_longer_limit_is_set_again_for_a_shorter_one():
    with Watchdog.install() as dog:
        dog.arm(600.0)
        dog.disarm()
        t = time.monotonic()
        with pytest.raises(ParseTimeout):
            with dog.armed(0.05):
                busy()
        assert time.monotonic() - t < BOUND


def test_an_alarm_for_an_earlier_mail_waits_for_the_end_of_the_mail_armed():
    """The alarm of a mail armed for 0.05 s comes while the next one (armed for 0.4 s) runs: it is not
    that mail's end, so it raises nothing then; the mail is stopped at its own end."""
    with Watchdog.install() as dog:
        dog.arm(0.05)
        dog.disarm()
        start = time.monotonic()
        with pytest.raises(ParseTimeout):
            with dog.armed(0.4):
                busy()
        assert time.monotonic() - start >= 0.4


def test_an_alarm_with_no_mail_armed_raises_nothing():
    with Watchdog.install() as dog:
        dog.arm(0.02)
        assert dog.disarm() is False
        busy(0.2)  # the alarm comes here, between mails
        with dog.armed(20.0):
            busy(0.05)


def test_a_watchdog_nested_in_an_armed_one_leaves_the_outer_mail_timed():
    with Watchdog.install() as dog:
        with pytest.raises(ParseTimeout):
            with dog.armed(0.2):
                with watchdog(20.0):  # installs its own handler, and stops the timer when it ends
                    pass
                busy()


def test_swallowed_alarms_repeat_until_disarmed():
    """A late mail's ParseTimeout may land where it is swallowed (a gc or weakref callback: Python ignores what
    those raise); the alarm then comes again until the mail is disarmed. Here every one is swallowed, by a handler
    around the watchdog's: which bytecode an alarm lands on does not matter (a loop that caught them itself could
    not cover its own jump back, where the interpreter handles signals too: a fresh-clone run failed on it)."""
    with Watchdog.install() as dog:
        handler = signal.getsignal(signal.SIGALRM)
        raised: list[float] = []

        def swallowing(signum, frame):
            try:
                handler(signum, frame)
            except ParseTimeout:
                raised.append(time.monotonic())

        signal.signal(signal.SIGALRM, swallowing)
        armed_at = time.monotonic()
        dog.arm(0.02)
        bound = time.monotonic() + BOUND
        while len(raised) < 2 and time.monotonic() < bound:
            sum(range(100))
        assert len(raised) >= 2  # the first alarm, and at least one repeat
        assert raised[0] >= armed_at + 0.02  # none before the mail's limit
        assert dog.disarm() is True
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # the repeating timer is stopped
        count = len(raised)
        busy(0.15)  # disarmed: no more alarms raise
        assert len(raised) == count


class Landing:
    """:func:`alarm_lands_on`'s: :meth:`wait`, in an armed mail, stops the alarm's timer and passes the mail's
    limit, then has the alarm handled on the first instruction of the code named (``landed`` says where)."""

    def __init__(self, code, handler):
        self.code, self.handler = code, handler
        self.landed: list[str] = []

    def wait(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)  # the alarm withheld (ignored until now): the trace delivers it
        time.sleep(0.05)  # past the limit
        signal.signal(signal.SIGALRM, self.handler)

        def trace(frame, event, arg):
            if event == "call" and frame.f_code is self.code and not self.landed:
                self.landed.append(frame.f_code.co_qualname)
                self.handler(signal.SIGALRM, frame)

        sys.settrace(trace)


@contextmanager
def alarm_lands_on(function) -> Iterator[Landing]:
    """A late mail's alarm handled on the first instruction of ``function`` when it next runs: a function's start
    is one of the places the interpreter handles a signal at; a trace function calls the watchdog's handler there,
    with that frame, as the interpreter calls a signal handler (see :meth:`Landing.wait`). Until then the alarm
    is ignored: one that came before its timer is stopped (a loaded machine) changes nothing."""
    handler = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    previous = sys.gettrace()
    try:
        yield Landing(function.__code__, handler)
    finally:
        sys.settrace(previous)
        signal.signal(signal.SIGALRM, handler)


def test_an_alarm_landing_on_the_start_of_disarm_is_reported_by_it_not_raised():
    """disarm() is where a mail's timing ends: an alarm handled on its first instruction (before it has stopped
    anything) raises nothing there (raised there, it would leave the timer repeating: it would raise again
    wherever the caller is next); disarm reports the mail as late, and the timer is stopped."""
    with Watchdog.install() as dog:
        with alarm_lands_on(Watchdog.disarm) as landing:
            dog.arm(0.01)
            landing.wait()
            assert dog.disarm() is True
        assert landing.landed == ["Watchdog.disarm"]
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        busy(0.15)  # disarmed: no more alarms raise


def test_an_alarm_landing_on_the_exit_of_an_armed_block_ends_it_in_one_parse_timeout():
    """The alarm handled on the first instruction of the armed block's exit (which the with statement calls as
    the block ends, before the timer is stopped): the block ends in ParseTimeout, the timer is stopped, and no
    alarm raises after it."""
    with Watchdog.install() as dog:
        block = dog.armed(0.01)
        with alarm_lands_on(type(block).__exit__) as landing:
            with pytest.raises(ParseTimeout):
                with block:
                    landing.wait()
        assert landing.landed
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        busy(0.15)  # no more alarms raise
