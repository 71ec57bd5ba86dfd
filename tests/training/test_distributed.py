"""Meta-training over several processes: sharding, exact gradient averaging, torchrun runs and a killed rank."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import automl_meta as am
from automl_meta.exceptions import CheckpointError
from automl_meta.training import _outer_loop
from automl_meta.training import checkpoint as ckpt
from automl_meta.training.distributed import ProcessGroup

TORCHRUN = Path(sys.executable).with_name("torchrun")
ITERATIONS, META_BATCH, SEED = 30, 9, 3  # 9 tasks on 2 processes: shares of 4 and 5, weighted exactly

CONFIG = f"""\
seed = {SEED}
output = "{{output}}"

[tasks]
family = "Sinusoid"
shots = 5

[learner]
name = "maml"
inner_steps = 1
model = {{{{ name = "MLP", hidden_sizes = [16, 16] }}}}

[trainer]
iterations = {ITERATIONS}
meta_batch_size = {META_BATCH}
n_validation_tasks = 10
eval_every = 10
checkpoint_every = 10
checkpoint_dir = "{{run_dir}}"
dtype = "float64"
verbose = 0
"""

# The same run through the Python API, whose rank 1 kills itself (SIGKILL) after iteration 23 on request.
KILL_SCRIPT = textwrap.dedent(f"""
    import os, signal, sys
    import torch, torch.distributed as dist
    import automl_meta as am
    from automl_meta.training import Callback

    class KillRank1(Callback):
        def on_iteration_end(self, trainer, iteration, logs):
            if trainer.rank == 1 and iteration == 23:
                os.kill(os.getpid(), signal.SIGKILL)

    run_dir, out, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    dist.init_process_group("gloo")
    learner = am.learners.MAML(am.models.MLP([16, 16]), inner_steps=1)
    trainer = am.MetaTrainer(learner, am.tasks.Sinusoid(shots=5), iterations={ITERATIONS},
                             meta_batch_size={META_BATCH}, n_validation_tasks=10, eval_every=10,
                             checkpoint_every=10, checkpoint_dir=run_dir, resume=True, dtype=torch.float64,
                             seed={SEED}, verbose=0, callbacks=[KillRank1()] if kill else [])
    artifact = trainer.fit()
    if trainer.is_main_process:
        artifact.save(out)
    dist.destroy_process_group()
""")


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [str(TORCHRUN), "--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def one_process_trainer() -> am.MetaTrainer:
    return am.MetaTrainer(
        am.learners.MAML(am.models.MLP([16, 16]), inner_steps=1),
        am.tasks.Sinusoid(shots=5),
        iterations=ITERATIONS,
        meta_batch_size=META_BATCH,
        n_validation_tasks=10,
        eval_every=10,
        dtype=torch.float64,
        seed=SEED,
        verbose=0,
    )


@pytest.fixture(scope="module")
def two_process_cli_run(tmp_path_factory) -> Path:
    """``torchrun --nproc-per-node 2 -m automl_meta meta-train`` of CONFIG; returns the artifact's path."""
    tmp = tmp_path_factory.mktemp("two-process")
    config = tmp / "sine.toml"
    config.write_text(CONFIG.format(output=tmp / "sine.ameta", run_dir=tmp / "run"))
    done = torchrun("-m", "automl_meta", "meta-train", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved ") == 1  # one process reports and writes
    return tmp / "sine.ameta"


def test_two_processes_end_with_the_parameters_of_one(two_process_cli_run):
    two = am.load(two_process_cli_run).learner.state_dict()
    trainer = one_process_trainer()
    trainer._setup()
    initial = {k: v.clone() for k, v in trainer.learner.state_dict().items()}
    one = trainer.fit().learner.state_dict()
    assert two.keys() == one.keys()
    assert max(float((two[k] - one[k]).abs().max()) for k in one) < 1e-6
    assert min(float((one[k] - initial[k]).abs().max()) for k in one) > 1e-3  # and both moved far from the start
    # Only process 0 wrote: one checkpoint and one artifact, no stray temporary files.
    run = two_process_cli_run.parent / "run"
    assert sorted(p.name for p in run.iterdir()) == ["artifact.ameta", "last.ckpt", "last.ckpt.prev"]


def test_a_killed_rank_resumes_from_the_last_checkpoint(tmp_path, two_process_cli_run):
    script = tmp_path / "train.py"
    script.write_text(KILL_SCRIPT)
    run_dir, out = tmp_path / "run", tmp_path / "resumed.ameta"
    killed = torchrun(str(script), str(run_dir), str(out), "1")
    assert killed.returncode != 0 and "Signal 9 (SIGKILL)" in killed.stderr, killed.stderr[-3000:]
    assert not out.exists()
    assert ckpt.load(run_dir / "last.ckpt")["record"]["iteration"] == 20  # the kill came after iteration 23
    resumed = torchrun(str(script), str(run_dir), str(out), "0")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = am.load(out).learner.state_dict(), am.load(two_process_cli_run).learner.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)  # an uninterrupted two-process run, bit for bit


def test_shards_cover_each_task_once_with_sizes_differing_by_at_most_one():
    for n in range(4, 30):
        for size in range(1, 5):
            shards = [ProcessGroup(rank, size).shard(n) for rank in range(size)]
            covered = [i for s in shards for i in range(n)[s]]
            assert covered == list(range(n))
            sizes = [s.stop - s.start for s in shards]
            assert max(sizes) - min(sizes) <= 1


@pytest.fixture
def single_process_group(tmp_path):
    """A real gloo process group of one process (collectives run, and return their input)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_reduce_weights_gradients_and_logs_and_fills_missing_gradients(single_process_group):
    a, b, c = (torch.nn.Parameter(torch.ones(2, 3)) for _ in range(3))
    a.grad = torch.full((2, 3), 4.0)
    logs = ProcessGroup(0, 1).reduce([a, b, c], {"loss": 2.0, "metric": 6.0}, weight=0.25)
    assert logs == {"loss": 0.5, "metric": 1.5}
    assert torch.equal(a.grad, torch.full((2, 3), 1.0))
    assert b.grad is None and c.grad is None  # no process had one: none, as in one process


def test_one_process_group_trains_as_without_one(single_process_group):
    learner = am.learners.Reptile(am.models.MLP([8]))
    with_group = am.MetaTrainer(
        learner,
        am.tasks.Sinusoid(shots=5),
        iterations=5,
        meta_batch_size=4,
        n_validation_tasks=0,
        distributed=True,
        verbose=0,
    )
    assert with_group.fit() is not None and with_group.world_size == 1 and with_group.is_main_process


def test_distributed_true_without_a_process_group_says_how_to_launch():
    trainer = am.MetaTrainer(
        am.learners.MAML(am.models.MLP([8])), am.tasks.Sinusoid(), iterations=2, distributed=True, verbose=0
    )
    with pytest.raises(RuntimeError, match="torchrun"):
        trainer.fit()


def test_bad_distributed_setting_is_refused():
    with pytest.raises(ValueError, match="distributed must be None"):
        am.MetaTrainer(am.learners.MAML(am.models.MLP([8])), am.tasks.Sinusoid(), distributed="yes")


def test_a_meta_batch_smaller_than_the_process_count_is_refused(monkeypatch):
    monkeypatch.setattr(_outer_loop, "current_group", lambda distributed: ProcessGroup(0, 4))
    trainer = am.MetaTrainer(
        am.learners.MAML(am.models.MLP([8])), am.tasks.Sinusoid(), meta_batch_size=3, iterations=2, verbose=0
    )
    with pytest.raises(ValueError, match=r"meta_batch_size \(3\) is smaller than the number of processes \(4\)"):
        trainer.fit()


def test_processes_resumed_at_different_positions_are_refused(single_process_group, monkeypatch):
    calls = []

    def fake_all_reduce(t, op=None):  # as if another process stood at iteration 7
        calls.append(op)
        t.copy_(torch.maximum(t, torch.tensor([7.0, -7.0])))

    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)
    with pytest.raises(CheckpointError, match="resumed at different iterations \\(5 to 7\\).*shared file system"):
        ProcessGroup(0, 2).check_same_position(5, "iteration")
    ProcessGroup(0, 2).check_same_position(7, "iteration")  # all at 7: fine
    assert calls == [dist.ReduceOp.MAX, dist.ReduceOp.MAX]
