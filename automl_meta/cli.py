"""The ``automl-meta`` command.

``automl-meta meta-train CONFIG.toml``   meta-train from a TOML file and save the artifact
``automl-meta evaluate ARTIFACT``       score an artifact on fresh tasks of its family
``automl-meta inspect ARTIFACT``        print an artifact's manifest
``automl-meta studies run NAME``        run ``studies/NAME.py`` of a source checkout
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path
from typing import Any, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLE_CONFIG = """\
seed = 0
output = "sine.ameta"

[tasks]            # a built-in family and its arguments
family = "Sinusoid"
shots = 10

[learner]          # maml, fomaml, metasgd, reptile or anil, and its arguments
name = "metasgd"
inner_steps = 1
model = { name = "MLP", hidden_sizes = [40, 40] }

[trainer]          # MetaTrainer's arguments
iterations = 20000
meta_batch_size = 25
checkpoint_dir = "runs/sine"
"""


class CLIError(Exception):
    """A problem with the command line or its files, reported without a traceback."""


def _table(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise CLIError(f"[{key}] must be a table in the config file.")
    return dict(value)


def meta_train(path: str, resume: bool) -> int:
    from . import learners, models, tasks
    from .training import MetaTrainer

    try:
        config = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CLIError(f"No config file at '{path}'. Example:\n\n{EXAMPLE_CONFIG}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CLIError(f"'{path}' is not valid TOML: {exc}") from None
    unknown = set(config) - {"seed", "output", "tasks", "learner", "trainer"}
    if unknown:
        raise CLIError(f"Unknown keys {sorted(unknown)} in '{path}'. Example:\n\n{EXAMPLE_CONFIG}")
    task_cfg, learner_cfg, trainer_cfg = (_table(config, k) for k in ("tasks", "learner", "trainer"))
    family = tasks.from_config({"family": task_cfg.pop("family", None), "config": task_cfg})
    name = learner_cfg.pop("name", None)
    if name not in learners.LEARNERS:
        raise CLIError(f"[learner] name must be one of {sorted(learners.LEARNERS)}, got {name!r}.")
    model = models.from_config(learner_cfg.pop("model", {"name": "MLP"}))
    learner = learners.LEARNERS[name](model, **learner_cfg)
    trainer = MetaTrainer(learner, family, seed=config.get("seed", 0), resume=resume, **trainer_cfg)
    artifact = trainer.fit()
    out = artifact.save(config.get("output", "artifact.ameta"))
    print(f"saved {out}: {json.dumps(artifact.metrics)}")
    return 0


def evaluate(path: str, n_tasks: int, steps: Sequence[int], seed: int) -> int:
    import numpy as np

    from . import tasks
    from .artifacts import load

    artifact = load(path)
    family = tasks.from_config(artifact.task_family)
    batch = family.sample(n_tasks, rng=np.random.default_rng(seed))
    dtype = next(iter(artifact.learner.parameters())).dtype
    metric = "accuracy" if family.task_type == "classification" else "MSE"
    print(f"{path}: {n_tasks} fresh {artifact.task_family['family']} tasks")
    print(f"{'steps':>5}  {'loss':>10}  {metric:>10}")
    for s in steps:
        loss, score = artifact.learner.evaluate(batch.to(dtype), steps=s)
        print(f"{s:>5}  {float(loss.mean()):>10.4f}  {float(score.mean()):>10.4f}")
    return 0


def inspect(path: str) -> int:
    from .artifacts import load

    print(json.dumps(load(path).manifest, indent=2, sort_keys=True))
    return 0


def run_study(name: str, args: Sequence[str]) -> int:
    studies = Path(__file__).resolve().parents[1] / "studies"
    script = studies / f"{name}.py"
    if not script.is_file():
        found = sorted(p.stem for p in studies.glob("[!_]*.py")) if studies.is_dir() else []
        where = f"available: {', '.join(found)}" if found else "studies/ ships with a source checkout only"
        raise CLIError(f"No study named {name!r} ({where}).")
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automl-meta", description="Meta-train learners and use what they learned.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("meta-train", help="meta-train from a TOML config and save the artifact")
    p.add_argument("config", help="TOML file with [tasks], [learner], [trainer], seed and output")
    p.add_argument("--resume", action="store_true", help="continue from the trainer's checkpoint_dir")
    p = sub.add_parser("evaluate", help="score an artifact on fresh tasks of its family")
    p.add_argument("artifact", help="an .ameta file or a bundled artifact name")
    p.add_argument("--tasks", type=int, default=600, help="number of fresh tasks (default 600)")
    p.add_argument("--steps", default="0,1,10", help="comma-separated adaptation steps (default 0,1,10)")
    p.add_argument("--seed", type=int, default=12345)
    p = sub.add_parser("inspect", help="print an artifact's manifest")
    p.add_argument("artifact")
    p = sub.add_parser("studies", help="reproducible experiments of a source checkout")
    ssub = p.add_subparsers(dest="studies_command", required=True)
    r = ssub.add_parser("run", help="run studies/NAME.py with the remaining arguments")
    r.add_argument("name")
    r.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .exceptions import ArtifactError, CheckpointError, TaskError

    try:
        if args.command == "meta-train":
            return meta_train(args.config, args.resume)
        if args.command == "evaluate":
            try:
                steps = [int(s) for s in args.steps.split(",")]
            except ValueError:
                raise CLIError(f"--steps must be comma-separated integers, got {args.steps!r}.") from None
            return evaluate(args.artifact, args.tasks, steps, args.seed)
        if args.command == "inspect":
            return inspect(args.artifact)
        return run_study(args.name, args.args)
    except (CLIError, ArtifactError, CheckpointError, TaskError, ValueError, TypeError) as exc:
        print(f"automl-meta: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
