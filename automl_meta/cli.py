"""The ``automl-meta`` command.

``automl-meta meta-train CONFIG.toml``   meta-train from a TOML file and save the artifact
                                        (``torchrun --nproc-per-node N -m automl_meta meta-train CONFIG.toml``
                                        shards each meta-batch over N processes)
``automl-meta evaluate ARTIFACT``       score an artifact on fresh tasks of its family
``automl-meta inspect ARTIFACT``        print an artifact's manifest
``automl-meta studies run NAME``        run ``studies/NAME.py`` of a source checkout
``automl-meta store upgrade [URL]``     create or upgrade an experience store's schema
``automl-meta store import-optuna STORAGE_URL [--study NAME]``
                                        copy finished trials of Optuna studies into the store
``automl-meta tune --data FILE.csv --target COL --estimator NAME``
                                        tune a scikit-learn estimator, warm-started (from the integrations)

Commands that need an integration come from the entry-point group ``automl_meta.commands``: each entry is a
function ``add_command(subparsers)`` that adds its parser and sets ``handler(args) -> exit code`` as a default,
so the core parses them without importing the integrations.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tasks import TaskDistribution

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
    """Meta-train from a config file; under ``torchrun``, as one process of a multi-process run."""
    from .training.distributed import process_group_from_environment

    with process_group_from_environment():
        return _meta_train(path, resume)


def _meta_train(path: str, resume: bool) -> int:
    import torch.distributed as dist

    from . import learners, models, tasks
    from .training import MetaTrainer

    config = _read_config(path)
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
    output = Path(config.get("output", "artifact.ameta"))
    main_process = not dist.is_initialized() or dist.get_rank() == 0  # the one process that writes files
    if main_process:
        _check_writable(output)  # before training: hours of work must not end in an unwritable path
    trainer = MetaTrainer(learner, family, seed=config.get("seed", 0), resume=resume, **trainer_cfg)
    artifact = trainer.fit()
    if not main_process:
        return 0
    try:
        out = artifact.save(output)
    except OSError as exc:
        kept = _keep_artifact(artifact, trainer.checkpoint_dir)
        raise CLIError(
            f"Training finished but the artifact could not be saved to '{output}' ({exc.strerror or exc})."
            f" It is kept at '{kept}': copy it where you want it."
        ) from None
    print(f"saved {out}: {json.dumps(artifact.metrics)}")
    return 0


def _read_config(path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CLIError(f"No config file at '{path}'. Example:\n\n{EXAMPLE_CONFIG}") from None
    except IsADirectoryError:
        raise CLIError(f"'{path}' is a directory, not a config file: give the path of a TOML file.") from None
    except OSError as exc:
        raise CLIError(f"Cannot read the config file '{path}': {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise CLIError(f"'{path}' is not a text file: give the path of a TOML config file.") from None
    except tomllib.TOMLDecodeError as exc:
        raise CLIError(f"'{path}' is not valid TOML: {exc}") from None


def _check_writable(output: Path) -> None:
    """Raise a CLIError now if ``output`` cannot be written, by creating (and removing) a file beside it."""
    import tempfile

    if output.is_dir():
        raise CLIError(
            f"The config's output '{output}' is a directory: give a file name such as '{output / 'artifact.ameta'}'."
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output.parent, prefix=f".{output.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise CLIError(
            f"Cannot write the artifact to the config's output '{output}' ({exc.strerror or exc}): "
            "choose a writable path. Nothing was trained."
        ) from None


def _keep_artifact(artifact: Any, checkpoint_dir: Path | None) -> Path:
    """Save ``artifact`` where a failed final save cannot lose it: the checkpoint folder, else a new temp folder."""
    import tempfile

    from .training._outer_loop import ARTIFACT_NAME

    if checkpoint_dir is not None and (checkpoint_dir / ARTIFACT_NAME).is_file():
        return checkpoint_dir / ARTIFACT_NAME  # the trainer left it there already
    return artifact.save(Path(tempfile.mkdtemp(prefix="automl-meta-")) / ARTIFACT_NAME)


def evaluate(path: str, n_tasks: int, steps: Sequence[int], seed: int) -> int:
    import numpy as np

    from .artifacts import load
    from .learners.update_rule import UpdateRule

    artifact = load(path)
    if isinstance(artifact.learner, UpdateRule):
        raise ValueError(
            f"'{path}' holds a learned optimizer ({artifact.learner.name}), not an adaptation "
            "learner: use it as automl_meta.optim.LearnedOptimizer(params, artifact=...), and "
            "compare it with Adam by running studies/l2o_vs_adam.py."
        )
    family, what = _rebuilt_family(artifact.task_family)
    batch = family.sample(n_tasks, rng=np.random.default_rng(seed))
    dtype = next(iter(artifact.learner.parameters())).dtype
    metric = "accuracy" if family.task_type == "classification" else "MSE"
    print(f"{path}: {n_tasks} fresh {what} tasks")
    print(f"{'steps':>5}  {'loss':>10}  {metric:>10}")
    for s in steps:
        loss, score = artifact.learner.evaluate(batch.to(dtype), steps=s)
        print(f"{s:>5}  {float(loss.mean()):>10.4f}  {float(score.mean()):>10.4f}")
    return 0


def _rebuilt_family(description: dict[str, Any]) -> tuple[TaskDistribution, str]:
    """The artifact's task family rebuilt from its description, and what to call its tasks.

    Of a mixture, only the parts that can be rebuilt (such as the synthetic prior of the bundled
    tabular artifacts) are: tables that a part was made from are not stored in the artifact.
    """
    from .tasks import FAMILIES, MixtureTasks, from_config

    parts = description.get("components") if description.get("family") == "MixtureTasks" else None
    if not parts:
        return from_config(description), str(description.get("family"))
    kept = [(p, w) for p, w in zip(parts, description.get("weights") or [1.0] * len(parts)) if p.get("config")]
    if not kept or any(p.get("family") not in FAMILIES for p, _ in kept):
        return from_config(description), str(description.get("family"))  # the error says what can be rebuilt
    names = ", ".join(str(p["family"]) for p, _ in kept)
    skipped = len(parts) - len(kept)
    note = f" (the mixture's {skipped} part(s) made from data are not stored, so not evaluated)" if skipped else ""
    return MixtureTasks([from_config(p) for p, _ in kept], [w for _, w in kept]), names + note


def inspect(path: str) -> int:
    from .artifacts import load, registry

    # Where the artifact came from goes to stderr: stdout stays the manifest's JSON, for tools to read.
    file, name = registry.locate(path)
    manifest = load(file).manifest
    where = f"bundled artifact {name!r} ({file})" if name else f"file '{file.resolve()}'"
    print(f"Source: {where}", file=sys.stderr)
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def run_study(name: str, args: Sequence[str]) -> int:
    studies = Path(__file__).resolve().parents[1] / "studies"
    script = (studies / f"{name}.py").resolve()
    # A name, not a path: only the checkout's own studies run (not '../tests/conftest' or a private '_module').
    if script.parent != studies or name.startswith("_") or not script.is_file():
        found = sorted(p.stem for p in studies.glob("[!_]*.py")) if studies.is_dir() else []
        where = f"available: {', '.join(found)}" if found else "studies/ ships with a source checkout only"
        raise CLIError(f"No study named {name!r} ({where}).")
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def store_upgrade(url: str | None) -> int:
    from .store import default_url, upgrade

    before, after = upgrade(url)
    where = url or default_url()
    if before == after:
        print(f"{where}: schema already at revision {after}")
    else:
        print(f"{where}: schema upgraded from {before or 'an empty database'} to revision {after}")
    return 0


def store_import_optuna(
    storage: str, study: str | None, store_url: str | None, data: str | None, target: str | None
) -> int:
    from .store import ExperienceStore, TaskDescription, import_optuna

    task = None
    if data is not None or target is not None:
        if data is None or target is None:
            raise CLIError("--data and --target go together: the CSV file of the dataset and its target column.")
        import pandas as pd

        try:
            frame = pd.read_csv(data)
        except FileNotFoundError:
            raise CLIError(f"No data file at '{data}'.") from None
        if target not in frame.columns:
            raise CLIError(f"'{data}' has no column {target!r}; columns: {', '.join(map(str, frame.columns))}.")
        features = frame.drop(columns=[target])
        task = TaskDescription.from_data(features.to_numpy(), frame[target].to_numpy(), name=Path(data).stem)
    store = ExperienceStore(store_url)
    for r in import_optuna(storage, store, study_name=study, task=task):
        print(
            f"{r.study}: {r.added} trials imported, {r.already_stored} already in the store, "
            f"{r.unfinished} unfinished skipped"
        )
    store.close()
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
    p = sub.add_parser("store", help="the experience store of past tuning runs")
    ssub = p.add_subparsers(dest="store_command", required=True)
    u = ssub.add_parser("upgrade", help="create or upgrade a store's schema (back up a shared store first)")
    u.add_argument("url", nargs="?", help="store URL (default: $AUTOML_META_STORE or the user data directory)")
    i = ssub.add_parser("import-optuna", help="copy finished trials of Optuna studies into the store")
    i.add_argument("storage", help="Optuna storage URL, e.g. sqlite:///optuna.db or postgresql://...")
    i.add_argument("--study", help="import this study only (default: every study of the storage)")
    i.add_argument("--store", help="store URL (default: $AUTOML_META_STORE or the user data directory)")
    i.add_argument(
        "--data", help="CSV file of the dataset the studies tuned for (when their user attributes do not say)"
    )
    i.add_argument("--target", help="target column of --data")
    for entry in entry_points(group="automl_meta.commands"):
        entry.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .exceptions import ArtifactError, CheckpointError, StoreError, TaskError

    try:
        if hasattr(args, "handler"):  # a command added through the automl_meta.commands entry points
            return int(args.handler(args))
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
        if args.command == "store":
            if args.store_command == "upgrade":
                return store_upgrade(args.url)
            return store_import_optuna(args.storage, args.study, args.store, args.data, args.target)
        return run_study(args.name, args.args)
    except (CLIError, ArtifactError, CheckpointError, TaskError, StoreError, ValueError, TypeError) as exc:
        print(f"automl-meta: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the command was pointed at cannot be read or written
        where = f" '{exc.filename}'" if exc.filename else ""
        print(f"automl-meta: error:{where} {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
