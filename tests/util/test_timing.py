"""util/timing.py: median_ms makes its warm-up calls untimed, then returns the median of the timed ones
in milliseconds (on a stand-in clock: tests time nothing)."""
from types import SimpleNamespace

import pytest

import util.timing
from util.timing import median_ms


def test_median_ms_warms_up_untimed_and_returns_the_median_in_ms(monkeypatch):
    ticks = iter([0.0, 0.004, 1.0, 1.001, 2.0, 2.010])  # the timed calls take 4, 1 and 10 ms
    monkeypatch.setattr(util.timing, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    calls = []
    assert median_ms(lambda: calls.append(len(calls)), runs=3, warmup=2) == pytest.approx(4.0)
    assert calls == [0, 1, 2, 3, 4]  # 2 warm-up calls read no clock, the 3 timed ones read it twice each
