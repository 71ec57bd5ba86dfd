"""Meta-train the learned optimizers and the bundled ``default-l2o`` artifact.

Three update rules are meta-trained in turn, each by truncated backpropagation through time on
:class:`~automl_meta.tasks.OptimizeeTasks` (random quadratics and small MLPs of width 8-48, depth 1-3,
ReLU/tanh/GELU, on synthetic tabular classification and regression tasks), with 100-step inner
trainings cut into 20-step truncations and 8 problems vmapped per episode:

- ``hyper_controller``: an LSTM setting Adam's per-tensor learning rate, momentum and weight decay;
- ``mlp_optimizer``: the per-parameter MLP optimizer;
- ``lstm_optimizer``: the coordinate-wise LSTM optimizer of Andrychowicz et al. (2016).

Each run is seeded and checkpointed (a killed run resumes where it stopped and ends the same). The three
artifacts go to ``studies/results/l2o/`` for ``studies/l2o_vs_adam.py``; the one named by ``--default``
(chosen by that study's numbers, see docs/optim.md) is also written into the package as
``automl_meta/artifacts/bundled/default-l2o.ameta``.

Run ``python studies/train_default_l2o.py`` (about 15 minutes on one core), or ``--quick`` for a
seconds-long smoke run written under studies/results/quick/. Options meta-train for other regimes:

- ``--batch-size LOW HIGH``, ``--val-weight``: mini-batch inner gradients and a held-out term in the
  meta-loss (``UnrolledTrainer``); ``--loss-every``: the meta-loss's training term reads the whole
  training set only every that many steps (``UnrolledTrainer(loss_every=...)``), far cheaper with
  ``--shots`` in the hundreds;
- ``--quadratic-fraction`` (0.25), ``--cnn-fraction``, ``--real-fraction``, ``--autoencoder-fraction``:
  that share of random quadratics, of small CNNs, of MLPs on the corpus's meta-training tables (never
  its evaluation tables, which the held-out studies use), and of autoencoders (MLP and convolutional)
  on synthetic images (``OptimizeeTasks``);
- ``--shots LOW HIGH`` (default 64 128): the range of each problem's training-set size (``OptimizeeTasks(shots=...)``);
  larger sets take longer to memorise, as real training sets do; ``--query-shots`` (64): the held-out rows
  the held-out term of the meta-loss is measured on;
- ``--widths LOW HIGH`` (default 8 48): the MLPs' hidden widths (``OptimizeeTasks(widths=...)``);
  ``studies/l2o_rates.py`` shows which learning rates a choice of these options rewards;
- ``--cooldown``: every inner run cools down over this last fraction of its steps
  (``UnrolledTrainer(cooldown=...)``), for a rule used with ``LearnedOptimizer(total_steps=...)``;
- ``--interval``: the controller runs every that many steps (``HyperController``);
- ``--hypergradient``: the controller scales a learning rate that follows the hypergradient, with this
  gain per controller call (``HyperController(hypergradient=...)``); ``--bias-correction``: Adam's
  bias-corrected moments (``HyperController(bias_correction=True)``; with ``--init``, also for a rule
  meta-trained without them);
- ``--horizon``, ``--unroll``, ``--updates``, ``--episodes``: the inner run's length, the steps per
  truncation, how many truncations update the rule (``UnrolledTrainer(updates_per_episode=...)``, for long
  runs), and the number of episodes;
- ``--estimator``, ``--es-pairs``: the meta-gradient estimate (``tbptt``, ``es`` or ``pes``, whose
  perturbed runs go through the whole horizon) and its antithetic pairs;
- ``--init ARTIFACT``: go on meta-training that artifact's rule (same rule and settings), e.g. fine-tune
  ``default-l2o`` with PES over long runs (the new artifact's ``training["init"]`` names it, with its
  creation time and a checksum of its weights); ``--train-only PREFIX ...``: only the weights whose names
  start with these (``head.``: the controller's output layer), the others frozen.
- ``--average ARTIFACT ...``: train nothing; write the rule whose weights are the mean of these
  artifacts' (fine-tunes of the same rule from the same ``--init`` weights, e.g. several meta-seeds):
  averaging evens out the noise of each run's meta-gradients.
- ``--max-momentum``: the controller's momentum bound (``HyperController(max_momentum=...)``; 0.99, or
  with ``--init`` that rule's); ``--derive ARTIFACT --max-momentum F``: train nothing; write that
  controller, its weights unchanged, with this bound (its record names the source).

With ``--out`` the result stays out of the package. The shipped ``default-l2o`` (and
``studies/results/l2o/hyper_controller.ameta``) is the controller meta-trained for mini-batch training,
then bounded to a momentum of at most 0.92:

    python studies/train_default_l2o.py --only hyper_controller --batch-size 16 64 --val-weight 0.5 \
        --cnn-fraction 0.3 --interval 10
    python studies/train_default_l2o.py --derive studies/results/l2o/hyper_controller.ameta --max-momentum 0.92

(about 8 minutes); without the options, ``--only hyper_controller`` gives the earlier, full-batch default.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import RESULTS, output_dir, parser

import automl_meta as am
from automl_meta.corpus import load_corpus
from automl_meta.learners.hyper_controller import MAX_MOMENTUM

BUNDLED = Path(am.artifacts.registry.BUNDLED_DIR)
# (episodes, validate/checkpoint every) per rule: sized so that the three runs together take about
# 15 minutes on one idle core (about twice that on a busy shared machine).
EPISODES = {"hyper_controller": (224, 56), "mlp_optimizer": (93, 31), "lstm_optimizer": (54, 18)}
RULES = {  # (seed, interval, hypergradient gain, bias correction, momentum bound) -> rule; all but the seed:
    # the controller only
    "hyper_controller": lambda seed, interval, gain, corrected, bound: am.learners.HyperController(
        base="adam", interval=interval, hypergradient=gain, bias_correction=corrected, max_momentum=bound, seed=seed
    ),
    "mlp_optimizer": lambda seed, *_: am.learners.MLPOptimizer(seed=seed),
    "lstm_optimizer": lambda seed, *_: am.learners.LSTMOptimizer(seed=seed),
}


def add_problem_options(p: argparse.ArgumentParser) -> None:
    """The options that set the meta-training problems (``OptimizeeTasks``), shared with ``l2o_rates.py``."""
    p.add_argument("--cnn-fraction", type=float, default=0.0, help="share of convolutional problems (not quadratics)")
    p.add_argument(
        "--autoencoder-fraction",
        type=float,
        default=0.0,
        help="share of MLP problems that are autoencoders (half convolutional)",
    )
    p.add_argument("--quadratic-fraction", type=float, default=0.25, help="share of random-quadratic problems")
    p.add_argument("--real-fraction", type=float, default=0.0, help="share of MLP problems on real corpus tables")
    own = inspect.signature(am.tasks.OptimizeeTasks).parameters  # the defaults it leaves in place
    for name, what in (("shots", "training rows per problem"), ("widths", "hidden width range of the MLPs")):
        low, high = own[name].default
        p.add_argument(f"--{name}", type=int, nargs=2, metavar=("LOW", "HIGH"), help=f"{what} (default {low} {high})")
    p.add_argument("--query-shots", type=int, help=f"held-out rows per problem (default {own['query_shots'].default})")


def problems(args: argparse.Namespace) -> am.tasks.OptimizeeTasks:
    """The training problems :func:`add_problem_options` set; with ``--real-fraction``, MLPs also train on the
    corpus's meta-training tables. Options left unset keep ``OptimizeeTasks``' own defaults."""
    real = load_corpus("meta-train", max_rows=2000) if args.real_fraction else ()
    given: dict[str, Any] = {k: tuple(getattr(args, k)) for k in ("shots", "widths") if getattr(args, k) is not None}
    if args.query_shots is not None:
        given["query_shots"] = args.query_shots
    return am.tasks.OptimizeeTasks(
        quadratic_fraction=args.quadratic_fraction,
        cnn_fraction=args.cnn_fraction,
        real_tasks=real,
        real_fraction=args.real_fraction,
        autoencoder_fraction=args.autoencoder_fraction,
        **given,
    )


def weights_sha256(rule: torch.nn.Module) -> str:
    """A checksum of a rule's weights (names, shapes and values), to tell which weights a run started from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(rule.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def settings(rule: am.learners.UpdateRule) -> dict[str, Any]:
    """A rule's configuration but for its seed and the controller's bias correction and momentum bound: two
    rules with the same settings can share weights (a controller meta-trained on the uncorrected moments can be
    fine-tuned on the corrected ones, or under another bound)."""
    return {**rule.get_config(), "seed": None, "bias_correction": None, "max_momentum": None}


def initialized(rule: am.learners.UpdateRule, path: str) -> tuple[am.learners.UpdateRule, dict[str, str]]:
    """``rule`` with the weights of the artifact at ``path`` (same rule and settings), to go on meta-training it;
    and the record of where it started (the artifact as named, when it was made, its weights' checksum)."""
    source = am.load(path)
    learner = source.learner
    if settings(learner) != settings(rule):
        raise SystemExit(f"--init {path}: its rule {learner.get_config()} is not {rule.get_config()}")
    rule.load_state_dict(learner.state_dict())
    return rule, origin(path, source)


def origin(path: str, source: am.MetaArtifact) -> dict[str, str]:
    """The record of the artifact a rule came from: as named, when it was made, its weights' checksum."""
    return {"artifact": str(path), "created": source.created, "weights_sha256": weights_sha256(source.learner)}


def bound_of(given: float | None, init: str | None) -> float:
    """The controller's momentum bound: as given, else the ``--init`` rule's (a fine-tune keeps it), else the
    default."""
    if given is not None:
        return given
    rule = am.load(init).learner if init is not None else None
    return float(getattr(rule, "max_momentum", MAX_MOMENTUM))


def derived(path: str, max_momentum: float) -> am.MetaArtifact:
    """The controller of the artifact at ``path``, its weights unchanged, with its momentum bounded by
    ``max_momentum`` (``HyperController(max_momentum=...)``): nothing is meta-trained. The training record is
    the source's (how its weights were learned), with the source named under ``"derived_from"``."""
    source = am.load(path)
    if source.learner.name != "hyper_controller":
        raise SystemExit(f"--derive {path}: its rule is {source.learner.name}, not hyper_controller")
    rule = am.learners.from_config({**source.learner.get_config(), "max_momentum": max_momentum})
    rule.load_state_dict(source.learner.state_dict())
    return am.MetaArtifact(
        rule,
        task_family=source.task_family,
        training={**source.training, "derived_from": origin(path, source)},
        metrics=source.metrics,
        seed=source.seed,
    )


def averaged(paths: list[str]) -> am.MetaArtifact:
    """The rule whose weights are the mean of those of the artifacts at ``paths``.

    The artifacts must hold the same rule with the same settings, each meta-trained on from the same
    weights (``--init``, same checksum): averaging such fine-tunes (a "model soup", Wortsman et al. 2022)
    keeps what they share and evens out the noise of each run's meta-gradients. The result keeps the
    first artifact's task family; its training record lists every member's record and weights' checksum.
    """
    members = [am.load(path) for path in paths]
    rule, starts = members[0].learner, {(m.training.get("init") or {}).get("weights_sha256") for m in members}
    found = [settings(m.learner) for m in members]
    if any(config != found[0] for config in found):
        raise SystemExit(f"--average: the artifacts hold different rules or settings: {found}")
    if len(starts) != 1 or None in starts:
        raise SystemExit("--average: each artifact must be meta-trained on from the same weights (--init)")
    records = [{**m.training, "weights_sha256": weights_sha256(m.learner), "seed": m.seed} for m in members]
    states = [m.learner.state_dict() for m in members]
    rule.load_state_dict({k: torch.stack([s[k] for s in states]).mean(0) for k in states[0]})
    return am.MetaArtifact(
        rule,
        task_family=members[0].task_family,
        training={"trainer": members[0].training["trainer"], "average_of": records},
        metrics={"members": len(members)},
    )


def train(
    name: str, episodes: int, eval_every: int, seed: int, run_dir: Path, quick: bool, regime: dict, tasks: Any
) -> am.MetaArtifact:
    regime = dict(regime)
    interval, horizon, gain = regime.pop("interval"), regime.pop("horizon"), regime.pop("hypergradient")
    corrected, bound = regime.pop("bias_correction"), regime.pop("max_momentum")
    unroll, init, only = regime.pop("unroll"), regime.pop("init"), regime.pop("train_only")
    if quick:  # seconds: a short horizon, every truncation updated
        horizon, unroll, regime["updates_per_episode"] = 20, 10, None
    rule, started = RULES[name](seed, interval, gain, corrected, bound), None
    if init is not None:
        rule, started = initialized(rule, init)
    for weight_name, weight in rule.named_parameters():  # the others stay as initialised
        weight.requires_grad_(not only or weight_name.startswith(tuple(only)))
    trainer = am.training.UnrolledTrainer(
        rule,
        tasks,
        meta_batch_size=2 if quick else 8,
        episodes=episodes,
        horizon=horizon,
        unroll=unroll,
        outer_lr=2e-3,
        clip_grad_norm=1.0,
        n_validation_batches=1 if quick else 2,
        validation_horizon=40 if quick else max(400, 2 * horizon),
        eval_every=eval_every,
        checkpoint_dir=run_dir / name,
        resume=True,
        seed=seed,
        verbose=0,
        **regime,
    )
    artifact = trainer.fit()
    if started is not None:  # the run's settings name the frozen weights, not where the others started
        artifact.training["init"] = started
    return artifact


def _options() -> argparse.ArgumentParser:
    """The study's options: the rules to meta-train, their regime and problems, or a rule made of others."""
    p = parser(__doc__, "two episodes per rule, for smoke tests")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--default", choices=sorted(RULES), default="hyper_controller", help="the rule bundled as default-l2o"
    )
    p.add_argument("--only", choices=sorted(RULES), help="train only this rule")
    p.add_argument("--batch-size", type=int, nargs=2, metavar=("LOW", "HIGH"), help="mini-batch inner gradients")
    p.add_argument("--val-weight", type=float, default=0.0, help="weight of the held-out term of the meta-loss")
    p.add_argument(
        "--loss-every", type=int, default=1, help="steps between the training losses of the meta-loss (default 1)"
    )
    p.add_argument(
        "--cooldown", type=float, default=0.0, help="inner runs cool down over this last fraction (total_steps)"
    )
    p.add_argument("--interval", type=int, default=1, help="hyper_controller: steps between controller calls")
    p.add_argument("--hypergradient", type=float, default=0.0, help="hyper_controller: hypergradient gain per call")
    p.add_argument("--bias-correction", action="store_true", help="hyper_controller: Adam's bias-corrected moments")
    p.add_argument(
        "--max-momentum",
        type=float,
        help=f"hyper_controller: the momentum's upper bound (default {MAX_MOMENTUM}, or with --init that rule's)",
    )
    add_problem_options(p)
    p.add_argument("--horizon", type=int, default=100, help="inner training steps per episode")
    p.add_argument("--updates", type=int, help="truncations per episode followed by an outer update (default: all)")
    p.add_argument("--episodes", type=int, help="episodes (default: the rule's budget)")
    p.add_argument("--unroll", type=int, default=20, help="inner steps per truncation (one outer update each)")
    p.add_argument("--estimator", choices=am.training.unrolled.ESTIMATORS, default="tbptt", help="meta-gradient")
    p.add_argument("--es-pairs", type=int, default=8, help="antithetic pairs of the es and pes estimators")
    p.add_argument("--init", help="start from this artifact's weights (same rule and settings) instead of at random")
    p.add_argument("--train-only", nargs="+", metavar="PREFIX", help="meta-train only the weights of these names")
    p.add_argument(
        "--average", nargs="+", metavar="ARTIFACT", help="train nothing: write the mean of these fine-tunes' weights"
    )
    p.add_argument("--derive", metavar="ARTIFACT", help="train nothing: write this controller with --max-momentum")
    return p


def _regime(args: argparse.Namespace) -> dict[str, Any]:
    """The meta-training settings the options give, as :func:`train` takes them."""
    return {
        "batch_size": tuple(args.batch_size) if args.batch_size else None,
        "val_weight": args.val_weight,
        "loss_every": args.loss_every,
        "cooldown": args.cooldown,
        "interval": args.interval,
        "hypergradient": args.hypergradient,
        "bias_correction": args.bias_correction,
        "max_momentum": bound_of(args.max_momentum, args.init),
        "horizon": args.horizon,
        "updates_per_episode": args.updates,
        "unroll": args.unroll,
        "init": args.init,
        "train_only": args.train_only,
        "estimator": args.estimator,
        "es_pairs": args.es_pairs,
    }


def _write_combined(args: argparse.Namespace, artifacts_dir: Path) -> None:
    """Write the rule ``--average`` or ``--derive`` makes of existing artifacts, meta-training nothing."""
    artifact = averaged(args.average) if args.average else derived(args.derive, args.max_momentum)
    path = artifact.save(artifacts_dir / f"{artifact.learner.name}.ameta")
    what = f"the mean of {len(args.average)} rules' weights" if args.average else f"{args.derive}, bounded"
    print(f"{artifact.learner.name}: {what} -> {path}", flush=True)


def _train_and_write(name: str, args: argparse.Namespace, run_dir: Path, artifacts_dir: Path) -> None:
    """Meta-train the rule ``name`` as the options say and write its artifact."""
    start = time.perf_counter()
    episodes, eval_every = (2, 1) if args.quick else EPISODES[name]
    if args.episodes and not args.quick:
        episodes, eval_every = args.episodes, max(1, args.episodes // 4)
    regime = _regime(args)
    tasks = problems(args)
    artifact = train(name, episodes, eval_every, args.seed, run_dir, args.quick, regime, tasks)
    path = artifact.save(artifacts_dir / f"{name}.ameta")
    print(
        f"{name}: best validation relative log-loss {artifact.metrics['val_loss']:.4f} at episode "
        f"{artifact.metrics['best_episode']}; {time.perf_counter() - start:.0f} s; "
        f"{path.stat().st_size / 1e3:.1f} kB -> {path}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    p = _options()
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = output_dir(args.out, args.quick)
    artifacts_dir = out / "l2o" if (args.out or args.quick) else RESULTS / "l2o"
    run_dir = out / "runs" / "default_l2o"
    bundled = out if (args.out or args.quick) else BUNDLED
    if args.derive and args.max_momentum is None:
        p.error("--derive needs --max-momentum")
    if args.average or args.derive:
        _write_combined(args, artifacts_dir)
    trained = [] if args.average or args.derive else [args.only] if args.only else list(RULES)
    for name in trained:
        _train_and_write(name, args, run_dir, artifacts_dir)
    source = artifacts_dir / f"{args.default}.ameta"
    if source.exists():
        target = bundled / "default-l2o.ameta"
        shutil.copyfile(source, target)
        print(f"default-l2o = {args.default} -> {target}")


if __name__ == "__main__":
    main()
