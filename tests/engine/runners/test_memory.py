"""MemoryRelease: once per backlog, after the inbox stayed empty, never during one."""

from __future__ import annotations

import pytest

from floorwalker.engine.runners.memory import MemoryRelease


class Counting(MemoryRelease):
    def release(self) -> None:
        self.released += 1


def test_nothing_while_the_runner_keeps_up() -> None:
    mem = Counting(quiet_s=5.0)
    assert not any(mem.tick(float(t), 0, 0) for t in range(100))
    assert mem.released == 0


def test_once_after_a_backlog_when_the_inbox_stayed_empty() -> None:
    mem = Counting(quiet_s=5.0)
    pressure = 0
    for t in range(10):  # overloaded: the intake waits, messages queue
        pressure += 50
        assert not mem.tick(float(t), pressure, 1000)
    assert not mem.tick(10.0, pressure, 400)  # draining
    assert not mem.tick(11.0, pressure, 0)  # empty: the quiet period starts
    assert not mem.tick(15.0, pressure, 0)
    assert mem.tick(16.0, pressure, 0)
    assert not any(mem.tick(float(t), pressure, 0) for t in range(17, 60))
    assert mem.released == 1


def test_a_message_in_the_inbox_restarts_the_quiet_period() -> None:
    mem = Counting(quiet_s=5.0)
    mem.tick(0.0, 10, 0)
    mem.tick(1.0, 10, 0)
    mem.tick(4.0, 10, 3)  # traffic again before the period ended
    assert not mem.tick(6.5, 10, 0)
    assert not mem.tick(11.0, 10, 0)
    assert mem.tick(11.5, 10, 0)


def test_release_collects_and_trims_for_real() -> None:
    mem = MemoryRelease()
    assert mem._trim is not None, "glibc's malloc_trim was not found (Debian has it)"
    garbage = [[i] for i in range(100_000)]
    cycle: list[object] = []
    cycle.append(cycle)
    del garbage, cycle
    mem.release()
    assert mem.released == 1


@pytest.mark.parametrize("quiet", [0.0, 2.0])
def test_quiet_period_is_the_setting(quiet: float) -> None:
    mem = Counting(quiet_s=quiet)
    mem.tick(0.0, 1, 0)
    mem.tick(1.0, 1, 0)
    assert mem.tick(1.0 + quiet, 1, 0)
