"""The per-mail watchdog sets its timer once for a run of mails (toolkit/prepare.py ``Watchdog``): an alarm
set for an earlier mail is moved to the mail armed when it comes, one due too late is set earlier, an alarm
with no mail armed raises nothing, and a watchdog nested in an armed one leaves the outer mail timed.
Every busy loop here is bounded (30 s): a watchdog that never fires fails the test instead of hanging it."""
from __future__ import annotations

import time

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
    with Watchdog.install() as dog:
        dog.arm(0.02)
        swallowed = 0
        end = time.monotonic() + 0.3
        while True:
            try:  # every statement of the loop inside a handler: an alarm may land on any of them
                try:
                    if time.monotonic() >= end:
                        break
                    sum(range(1000))
                except ParseTimeout:
                    swallowed += 1
            except ParseTimeout:  # one that landed on the count itself
                swallowed += 1
        assert swallowed >= 2  # the first alarm, and at least one repeat
        assert dog.disarm() is True
        busy(0.15)  # disarmed: no more alarms raise
