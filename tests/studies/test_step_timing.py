"""How the learned-optimizer studies time ``optimizer.step()``: blocks of whole controller intervals."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from .conftest import STUDIES


@pytest.fixture
def timing(monkeypatch):
    monkeypatch.syspath_prepend(str(STUDIES))
    import _step_timing

    return _step_timing


class _Counting:
    """An optimizer stand-in that records, in a shared log, which optimizer stepped."""

    def __init__(self, name: str, log: list[str], interval: int | None = None) -> None:
        self.name, self.log = name, log
        if interval is not None:
            self.rule = SimpleNamespace(interval=interval)

    def step(self) -> None:
        self.log.append(self.name)


def test_interleaved_timing_alternates_whole_blocks_of_every_interval(timing):
    log: list[str] = []
    opts = {"adam": _Counting("adam", log), "l2o": _Counting("l2o", log, interval=3), "x": _Counting("x", log, 4)}
    ms = timing.step_ms_interleaved(opts, reps=5, at_least=20)
    assert set(ms) == set(opts) and all(v > 0 for v in ms.values())
    block = 24  # the least multiple of 3 and 4 that is at least 20
    runs = [log[i : i + block] for i in range(0, len(log), block)]
    assert len(log) == 3 * 6 * block  # a warm-up turn and 5 timed turns, a block of each per turn
    assert [r[0] for r in runs] == ["adam", "l2o", "x"] * 6 and all(len(set(r)) == 1 for r in runs)


def test_sequential_timing_counts_whole_controller_intervals(timing):
    log: list[str] = []
    timing.step_ms(_Counting("l2o", log, interval=10), reps=4, at_least=25)
    assert len(log) == 5 * 30  # one warm-up block and 4 timed blocks of 30 steps (3 whole intervals)
