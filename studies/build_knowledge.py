"""Build the knowledge base: tune every search space on every meta-training task of the real-data corpus.

Two rounds. The tuning round runs, per (space, task), the shared design and TPE trials; the
cross-evaluation round then runs ``--cross`` good configurations of each space (medoids of the tasks'
best ones) on every task, so that the portfolio compares candidates by measured losses. Resumable:
every finished (space, task) run is a line of ``<out>/<type>/<space>.jsonl`` (``.cross.jsonl`` for the
second round); run the script again to go on where it stopped. ``--pack`` writes the knowledge file from
the runs done so far (into the package by default). Full build: 220 tasks x 8 spaces x (24 + 8)
configurations, 7.1 CPU hours (5.3 for the tuning round as measured, 1.8 estimated for the cross round):
about 3.6 hours with ``--jobs 2``. ``--more N`` then deepens every run by N TPE trials that start from all
of the task's results in the space (``<space>.more.jsonl``; resumable): 16 more cost about 2.7 CPU hours.

    python studies/build_knowledge.py --jobs 2            # run (or resume) the build
    python studies/build_knowledge.py --jobs 2 --more 16  # then deepen every run (resumable)
    python studies/build_knowledge.py --pack              # pack it into automl_meta/knowledge/bundled
    python studies/build_knowledge.py --pack --no-more    # without the deepening round: the shipped version 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from automl_meta.knowledge import BUNDLED_VERSION, bundled_path
from automl_meta.knowledge._build import BuildSettings, build, build_cross
from automl_meta.knowledge._deepen import build_more
from automl_meta.knowledge._pack import pack

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "knowledge", help="runs folder")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--design", type=int, default=16, help="shared design configurations per space")
    parser.add_argument("--tuned", type=int, default=8, help="TPE trials per (space, task) after the design")
    parser.add_argument("--cross", type=int, default=8, help="configurations per space run on every task")
    parser.add_argument(
        "--more", type=int, default=0, help="after the cross round: this many more TPE trials per run (default 0)"
    )
    parser.add_argument("--max-rows", type=int, default=800, help="rows per task (subsampled, stratified)")
    parser.add_argument("--max-tasks", type=int, default=None, help="only the first tasks (smoke builds)")
    parser.add_argument("--pack", action="store_true", help="pack the runs done so far into a knowledge file")
    parser.add_argument(
        "--no-more", action="store_true", help="with --pack: leave the deepening round's runs out (as in version 2)"
    )
    parser.add_argument("--into", type=Path, default=bundled_path().parent, help="folder of the knowledge file")
    parser.add_argument("--version", default=BUNDLED_VERSION, help="version of the knowledge file")
    args = parser.parse_args(argv)
    if args.pack:
        npz, manifest = pack(args.out, args.into, args.version, deepened=not args.no_more)
        print(f"wrote {manifest} and {npz.name} ({npz.stat().st_size / 1e6:.2f} MB)")
        return 0
    settings = BuildSettings(args.design, args.tuned, args.max_rows, max_tasks=args.max_tasks)
    start = time.perf_counter()
    ran = build(args.out, settings, jobs=args.jobs)
    if args.cross:
        ran += build_cross(args.out, settings, args.cross, jobs=args.jobs)
    if args.more:
        ran += build_more(args.out, settings, args.more, jobs=args.jobs)
    print(f"{ran} runs in {time.perf_counter() - start:.0f} s; runs folder: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
