"""Meta-train the bundled universal tabular artifacts, ``default-tabular-classification`` and ``-regression``.

Each is a Meta-SGD learner on a :class:`~automl_meta.models.TabularNet` (any width up to 128 features, up
to 10 classes), meta-trained on an even mixture (:class:`~automl_meta.tasks.MixtureTasks`) of two task
families:

- the broad synthetic prior of :class:`~automl_meta.tasks.SyntheticTabular` (random networks, structural
  causal models, trees, Gaussian mixtures and linear functions; 1 to 64 features, 2 to 10 classes, 8 to 128
  training rows, noise, imbalance, skewed and discrete features);
- real tables of the corpus's meta-train split (:func:`automl_meta.corpus.load_corpus`, at most 2,000 rows
  each) through :class:`~automl_meta.tasks.CorpusTabular`: random row samples and column subsets of 1 to
  64 encoded columns, classes permuted (merged into 10 groups beyond 10). The corpus's evaluation split is
  never loaded.

Of the meta-train tables of each task type, sorted by name, every sixth is held out: validation (the best
iteration and the default number of adaptation steps) draws its real tasks from those tables only, mixed
evenly with synthetic tasks. The two runs go to two single-threaded worker processes; both start from a
seeded initialisation and are checkpointed, and a killed run resumes where it stopped. The artifacts are
written into the package (``automl_meta/artifacts/bundled/``) unless ``--out`` says otherwise.

Run ``python studies/train_default_tabular.py`` (10,000 iterations of 5 inner steps: the two runs took 37
minutes together, most of it with the two cores shared with another two-process job), or ``--quick`` for a
smoke run of 20 iterations written under studies/results/quick/ (36 s likewise).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import output_dir

import automl_meta as am
from automl_meta.corpus import CorpusTask, load_corpus

BUNDLED = Path(am.artifacts.registry.BUNDLED_DIR)
TASK_TYPES = ("classification", "regression")
VALIDATION_EVERY = 6  # every sixth meta-train table (sorted by name) is held out for validation


def corpus_tables(task_type: str) -> tuple[list[CorpusTask], list[CorpusTask]]:
    """The corpus's meta-train tables of ``task_type``, split into training and validation tables."""
    tables = sorted(load_corpus("meta-train", task_type=task_type, max_rows=2000), key=lambda t: t.name)
    held_out = [i % VALIDATION_EVERY == VALIDATION_EVERY - 1 for i in range(len(tables))]
    return [t for t, h in zip(tables, held_out) if not h], [t for t, h in zip(tables, held_out) if h]


def task_mixture(task_type: str, tables: list[CorpusTask]) -> am.tasks.MixtureTasks:
    """Synthetic tasks and tasks of the real ``tables``, half and half, padded alike."""
    synthetic = am.tasks.SyntheticTabular(
        task_type, n_features=(1, 64), n_classes=(2, 10), shots=(8, 128), query_shots=64, noise=(0.0, 0.1)
    )
    real = am.tasks.CorpusTabular(tables, n_features=(1, 64), n_classes=10, shots=(8, 128), query_shots=64)
    return am.tasks.MixtureTasks([synthetic, real], weights=[0.5, 0.5])


def train(task_type: str, iterations: int, seed: int, run_dir: Path, out: Path) -> Path:
    training_tables, validation_tables = corpus_tables(task_type)
    tasks = task_mixture(task_type, training_tables)
    model = am.models.TabularNet(
        hidden=64, depth=2, max_features=128, max_outputs=10 if task_type == "classification" else 4, seed=seed
    )
    learner = am.learners.MetaSGD(model, inner_steps=5, inner_lr=0.01)
    artifact = am.MetaTrainer(
        learner,
        tasks,
        validation_tasks=task_mixture(task_type, validation_tables),
        meta_batch_size=16,
        iterations=iterations,
        outer_lr=1e-3,
        clip_grad_norm=10.0,
        n_validation_tasks=64,
        eval_every=max(1, iterations // 24),
        checkpoint_dir=run_dir / task_type,
        checkpoint_every=max(1, iterations // 24),
        resume=True,
        seed=seed,
        verbose=0,
        adapt_steps_candidates=(1, 2, 3, 5, 8, 10, 15, 20, 30),
    ).fit()
    return artifact.save(out / f"default-tabular-{task_type}.ameta")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few iterations, for smoke tests")
    p.add_argument("--iterations", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="where the .ameta files go (default: the package's bundled folder)")
    p.add_argument("--only", choices=TASK_TYPES, help=argparse.SUPPRESS)
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    iterations = args.iterations or (20 if args.quick else 10000)
    out = Path(args.out) if args.out else (output_dir(None, True) if args.quick else BUNDLED)
    run_dir = Path(args.run_dir) if args.run_dir else output_dir(None, args.quick) / "runs" / "default_tabular"
    torch.set_num_threads(1)
    if args.only:  # a worker process
        print(f"wrote {train(args.only, iterations, args.seed, run_dir, out)}", flush=True)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--only",
                t,
                "--iterations",
                str(iterations),
                "--seed",
                str(args.seed),
                "--out",
                str(out),
                "--run-dir",
                str(run_dir),
            ],
            env=env,
        )
        for t in TASK_TYPES
    ]
    codes = [proc.wait() for proc in procs]
    if any(codes):
        raise SystemExit(f"meta-training failed (exit codes {codes})")
    for t in TASK_TYPES:
        artifact = am.load(out / f"default-tabular-{t}.ameta")
        size = (out / f"default-tabular-{t}.ameta").stat().st_size / 1e6
        print(
            f"{t}: best validation loss {artifact.metrics['val_loss']:.4f} at iteration "
            f"{artifact.metrics['best_iteration']}; default adaptation steps "
            f"{artifact.training['adapt_steps']} (validation loss by steps: "
            f"{artifact.metrics['val_loss_by_adapt_steps']}); {size:.2f} MB"
        )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
