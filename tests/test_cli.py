"""The automl-meta command: meta-train from TOML, evaluate, inspect, and clear errors."""

from __future__ import annotations

import json

import pytest

import automl_meta as am
from automl_meta.cli import main

CONFIG = """
seed = 3
output = "{out}"
[tasks]
family = "Sinusoid"
shots = 5
[learner]
name = "metasgd"
model = {{ name = "MLP", hidden_sizes = [16] }}
[trainer]
iterations = 30
eval_every = 10
n_validation_tasks = 10
verbose = 0
"""


def test_meta_train_evaluate_inspect(tmp_path, capsys):
    out = tmp_path / "sine.ameta"
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG.format(out=out))
    assert main(["meta-train", str(cfg)]) == 0
    artifact = am.load(out)
    assert artifact.seed == 3 and artifact.manifest["learner"]["name"] == "metasgd"
    assert artifact.training["iterations"] == 30

    capsys.readouterr()
    assert main(["evaluate", str(out), "--tasks", "20", "--steps", "0,1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["0", "1"]

    assert main(["inspect", str(out)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["tensors_sha256"] == artifact.manifest["tensors_sha256"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "missing.ameta"], "No artifact file at 'missing.ameta'"),
        (["meta-train", "missing.toml"], "No config file at 'missing.toml'"),
        (["evaluate", "x.ameta", "--steps", "a,b"], "--steps must be comma-separated integers"),
        (["studies", "run", "no-such-study"], "No study named 'no-such-study'"),
        (["evaluate", "default-l2o"], "holds a learned optimizer (hyper_controller), not an adaptation learner"),
    ],
)
def test_errors_are_reported_without_traceback(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "body, message",
    [
        ("[tasks]\nfamily = 'Nope'\n", "cannot be rebuilt"),
        ("[tasks]\nfamily = 'Sinusoid'\n[learner]\nname = 'nope'\n", "name must be one of"),
        ("colour = 1\n", "Unknown keys"),
        ("[tasks\n", "not valid TOML"),
        ("[tasks]\nfamily = 'Sinusoid'\nshot = 3\n", "unexpected keyword"),
    ],
)
def test_bad_configs(body, message, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    assert main(["meta-train", str(cfg)]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_a_mixture_uses_the_parts_it_can_rebuild(tmp_path, capsys):
    # As for the bundled tabular artifacts: a synthetic prior mixed with tables that are not stored.
    import numpy as np

    rng = np.random.default_rng(0)
    tables = am.tasks.from_datasets([(rng.normal(size=(40, 3)), rng.normal(size=40)) for _ in range(3)], shots=8)
    synthetic = am.tasks.SyntheticTabular("regression", n_features=(1, 3), shots=8)
    mixture = am.tasks.MixtureTasks([synthetic, tables], weights=[1, 3])
    learner = am.learners.MetaSGD(am.models.TabularNet(hidden=8, depth=1, max_features=3, max_outputs=1), inner_steps=1)
    out = am.MetaTrainer(learner, mixture, meta_batch_size=2, iterations=2, n_validation_tasks=0, verbose=0).fit()
    path = out.save(tmp_path / "mixed.ameta")

    capsys.readouterr()
    assert main(["evaluate", str(path), "--tasks", "6", "--steps", "0,1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "6 fresh SyntheticTabular" in lines[0] and "1 part(s) made from data are not stored" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["0", "1"]
