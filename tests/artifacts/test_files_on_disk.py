"""Files written by automl-meta: permissions follow the umask, and a save killed mid-write leaves no orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import automl_meta as am
from automl_meta.training import checkpoint


def artifact():
    return am.MetaArtifact(am.learners.MetaSGD(am.models.MLP([4])).setup("regression", 1, 1))


def save_checkpoint(path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(3, 2)).sum().backward()
    opt.step()
    return checkpoint.save(
        path,
        learner_state=model.state_dict(),
        optimizer_state=opt.state_dict(),
        best_state=None,
        record={"iteration": 1},
    )


@pytest.fixture
def restore_umask():
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_saved_files_honour_the_umask(tmp_path, restore_umask, mask):
    os.umask(mask)
    paths = [artifact().save(tmp_path / "a.ameta"), save_checkpoint(tmp_path / "last.ckpt")]
    paths.append(save_checkpoint(tmp_path / "last.ckpt"))  # replacing a file, and keeping the previous one
    paths.append(checkpoint.previous_path(tmp_path / "last.ckpt"))
    for path in paths:
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~mask), path.name


KILLED_SAVE = """
import os, signal, sys
import automl_meta as am

def killed(src, dst):  # the temporary file is complete; the process dies before the rename
    os.kill(os.getpid(), signal.SIGKILL)

learner = am.learners.MetaSGD(am.models.MLP([4])).setup("regression", 1, 1)
os.replace = killed
am.MetaArtifact(learner).save(sys.argv[1])
"""


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_a_save_killed_mid_write_leaves_no_orphan_after_the_next_save(tmp_path):
    target = tmp_path / "run" / "sine.ameta"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_SAVE), str(target)], timeout=120)
    assert done.returncode == -signal.SIGKILL
    orphans = [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert len(orphans) == 1 and not target.exists()

    saved = artifact()
    saved.save(target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["sine.ameta"]
    assert am.load(target).manifest == saved.manifest


@pytest.mark.skipif(os.name == "nt", reason="process ids")
def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    from automl_meta.artifacts import tensorfile

    target = tmp_path / "a.ameta"
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ours = tensorfile._temporary(target).name
        live = tmp_path / ours.replace(f".{os.getpid()}-", f".{writer.pid}-", 1)
        live.write_bytes(b"being written")
        artifact().save(target)
        assert live.exists()
    finally:
        writer.kill()
        writer.wait()
    artifact().save(target)  # its writer is gone now
    assert not live.exists()
