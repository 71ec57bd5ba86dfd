"""Running a study's independent jobs: in forked worker processes, or in this one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def run_each(fn: Callable[[Any], None], jobs: Sequence[Any], processes: int) -> None:
    """``fn(job)`` for every job, in up to ``processes`` forked workers when there is more than one of each.

    Jobs keep their own results (files), so nothing is returned; order the longest first to balance workers.
    """
    if processes > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(processes, len(jobs))) as pool:
            pool.map(fn, jobs, chunksize=1)
    else:
        for job in jobs:
            fn(job)
