"""Four worker processes x 25 trials on one PostgreSQL / MariaDB database, recorder on: nothing lost or doubled."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import optuna

from automl_meta.store import ExperienceStore

from ._optuna_knowledge import new_similar, quadratic

WORKERS, TRIALS = 4, 25


def test_four_workers_on_one_server(server_url):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = ExperienceStore(server_url)  # schema created once, like an admin would before a campaign
    # Some knowledge from an earlier study, so that the workers run the portfolio and transfer phases.
    past = optuna.create_study(study_name="past", storage=server_url, sampler=optuna.samplers.RandomSampler(seed=0))
    from sklearn.datasets import make_classification

    from automl_meta.integrations.optuna import ExperienceRecorder
    from automl_meta.store import TaskDescription

    past_task = TaskDescription.from_data(*make_classification(300, 10, random_state=1), name="past")
    past.optimize(quadratic(2.0), n_trials=20, callbacks=[ExperienceRecorder(store=store, task=past_task)])
    optuna.create_study(study_name="campaign", storage=server_url)

    here = str(pathlib.Path(__file__).parent)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from _optuna_knowledge import tuning_worker; "
        "tuning_worker(sys.argv[2], 'campaign', int(sys.argv[3]), int(sys.argv[4]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, here, server_url, str(seed), str(TRIALS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(WORKERS)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err

    study = optuna.load_study(study_name="campaign", storage=server_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == WORKERS * TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    evaluations = store.evaluations(study="campaign")
    assert len(evaluations) == WORKERS * TRIALS  # none lost ...
    assert sorted(e.trial_number for e in evaluations) == list(range(WORKERS * TRIALS))  # ... none doubled
    by_number = {t.number: t for t in trials}
    for e in evaluations:
        assert e.params == by_number[e.trial_number].params and e.values == by_number[e.trial_number].values
    assert {e.task_id for e in evaluations} == {store.task_id(new_similar().fingerprint)}
    # The portfolio hands each trial number to one worker: the first 8 trials are distinct configurations.
    first = [tuple(sorted(by_number[i].params.items())) for i in range(8)]
    assert len(set(first)) == 8
    store.close()
