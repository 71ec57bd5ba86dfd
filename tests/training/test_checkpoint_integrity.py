"""A damaged checkpoint is refused, never resumed from; the previous checkpoint is kept and offered."""

from __future__ import annotations

import shutil

import pytest
import torch

import automl_meta as am
from automl_meta.artifacts import tensorfile
from automl_meta.tasks import OptimizeeTasks
from automl_meta.training import UnrolledTrainer
from automl_meta.training import checkpoint as ckpt


def trainer(tmp_path, **kw):
    kw = {
        "iterations": 20,
        "checkpoint_every": 10,
        "meta_batch_size": 4,
        "eval_every": 10,
        "n_validation_tasks": 5,
        "verbose": 0,
        "seed": 0,
        **kw,
    }
    return am.MetaTrainer(
        am.learners.MAML(am.models.MLP([8])), am.tasks.Sinusoid(shots=5), checkpoint_dir=tmp_path, **kw
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run of 20 iterations (checkpoints at 10 and 20) and its final parameters."""
    folder = tmp_path_factory.mktemp("run")
    artifact = trainer(folder).fit()
    return folder, artifact.learner.state_dict()


@pytest.fixture
def copy(run, tmp_path):
    folder, final = run
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    return tmp_path, final


def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_writing_a_checkpoint_keeps_the_previous_one(copy):
    folder, _ = copy
    assert ckpt.load(folder / "last.ckpt")["record"]["iteration"] == 20
    assert ckpt.load(folder / "last.ckpt.prev")["record"]["iteration"] == 10


def test_a_flipped_byte_in_the_tensors_is_refused_and_the_previous_checkpoint_offered(copy):
    folder, final = copy
    path = folder / "last.ckpt"
    flip(path, path.stat().st_size - 3)  # inside the last tensor's bytes
    with pytest.raises(
        am.CheckpointError,
        match=r"last.ckpt' failed its integrity check.*previous checkpoint "
        r"'.*last.ckpt.prev' \(iteration 10\) is intact.*move it to",
    ):
        trainer(folder, resume=True).fit()
    # Doing what the message says resumes from iteration 10 and ends where the uninterrupted run ended.
    shutil.move(folder / "last.ckpt.prev", path)
    resumed = trainer(folder, resume=True).fit()
    a, b = resumed.learner.state_dict(), final
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_changed_number_in_the_record_is_refused(copy):
    folder, _ = copy
    path = folder / "last.ckpt"
    data = path.read_bytes()
    assert data.count(b'\\"consecutive_bad\\": 0') == 1
    path.write_bytes(data.replace(b'\\"consecutive_bad\\": 0', b'\\"consecutive_bad\\": 7'))
    with pytest.raises(am.CheckpointError, match="failed its integrity check"):
        ckpt.load(path)


def test_every_flipped_byte_is_refused(copy, tmp_path_factory):
    folder, _ = copy
    good = (folder / "last.ckpt").read_bytes()
    bad = tmp_path_factory.mktemp("flipped") / "last.ckpt"
    for offset in range(0, len(good), max(1, len(good) // 400)):
        data = bytearray(good)
        data[offset] ^= 0x01
        bad.write_bytes(bytes(data))
        with pytest.raises(am.CheckpointError):
            ckpt.load(bad)
            pytest.fail(f"a flipped byte at offset {offset} of {len(good)} was not noticed")


def test_without_an_intact_previous_checkpoint_the_error_says_to_start_over(copy):
    folder, _ = copy
    flip(folder / "last.ckpt", (folder / "last.ckpt").stat().st_size - 3)
    flip(folder / "last.ckpt.prev", (folder / "last.ckpt.prev").stat().st_size - 3)
    with pytest.raises(am.CheckpointError, match="previous checkpoint is damaged too.*Start over"):
        trainer(folder, resume=True).fit()
    (folder / "last.ckpt.prev").unlink()
    with pytest.raises(am.CheckpointError, match="No previous checkpoint was kept. Start over"):
        trainer(folder, resume=True).fit()


def test_a_checkpoint_of_the_earlier_format_is_still_resumed_with_a_warning(copy):
    folder, final = copy
    path = folder / "last.ckpt.prev"
    tensors, doc = tensorfile.read(path)
    del doc[ckpt.DIGEST_KEY]  # as automl-meta 0.1 wrote it: version 1, no digest
    tensorfile.write(folder / "last.ckpt", tensors, {**doc, "version": 1})
    with pytest.warns(UserWarning, match="before checkpoints carried a digest"):
        resumed = trainer(folder, resume=True).fit()
    a = resumed.learner.state_dict()
    assert all(torch.equal(a[k], final[k]) for k in final)
    assert ckpt.load(folder / "last.ckpt")["record"]["iteration"] == 20  # rewritten with a digest
    # A digest-less file that claims the current version is damaged, not old.
    tensors, doc = tensorfile.read(folder / "last.ckpt")
    del doc[ckpt.DIGEST_KEY]
    tensorfile.write(folder / "last.ckpt", tensors, doc)
    with pytest.raises(am.CheckpointError, match="failed its integrity check"):
        ckpt.load(folder / "last.ckpt")


def test_unrolled_trainer_refuses_a_damaged_checkpoint(tmp_path):
    def unrolled(**kw):
        return UnrolledTrainer(
            am.learners.MLPOptimizer(seed=0),
            OptimizeeTasks(widths=(4, 8), shots=(16, 32)),
            episodes=2,
            meta_batch_size=2,
            horizon=8,
            unroll=4,
            eval_every=1,
            n_validation_batches=1,
            validation_horizon=8,
            verbose=0,
            checkpoint_dir=tmp_path,
            **kw,
        )

    unrolled().fit()
    assert ckpt.load(tmp_path / "last.ckpt.prev")["record"]["episode"] == 1
    flip(tmp_path / "last.ckpt", (tmp_path / "last.ckpt").stat().st_size - 3)
    with pytest.raises(am.CheckpointError, match=r"integrity check.*\(episode 1\) is intact"):
        unrolled(resume=True).fit()
