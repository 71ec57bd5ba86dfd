"""Running a study's independent jobs (in forked worker processes, or in this one) and keeping their results.

Each finished job writes one JSON file into the study's cache folder, so a killed run resumes with the jobs
that have no file yet.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def job_cache(out: Path, study: str, fresh: bool) -> Path:
    """``<out>/runs/<study>``, created; emptied first with ``fresh`` (an earlier run's jobs are not kept)."""
    cache = out / "runs" / study
    if fresh and cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def keep(path: Path, result: dict[str, Any]) -> None:
    """Write a job's result as JSON; through a temporary file, so a killed job never leaves half a result."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


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
